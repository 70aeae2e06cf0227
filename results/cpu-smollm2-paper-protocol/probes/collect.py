"""Collect the validation probes of configs/cpu-smollm2-paper-protocol.yaml (issue 14, item 3).

Each probe is one `booster run` of the preset on validation prompts with one setting changed,
its run folder committed here (probes/<name>/: summary, answers, histories, ledger, report), so
every probe can be re-read and rescored. This script writes, from those folders only:
- ../calibration.json: one entry per (probe, row) with the HS/FA numbers, the alignment
  diagnostics (held-out harmful loss and its reduction after one normalised α-step, first and
  last probe point) and the attack's real per-step update norm (min / median / max), and, where
  the probe's attacked answers were labeled by reading (hand-scores.json, written by
  judges/labels/probe_labels.py), its harmful score by reading and the judge's error on them;
- probes.png: every probe's alignment diagnostics on one pair of axes, and the attack step
  sizes beside the α values probed.

    python results/cpu-smollm2-paper-protocol/probes/collect.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "src"))

from booster import io  # noqa: E402
from booster.report.summary import DIAGNOSTIC, pyplot, save_png  # noqa: E402

# name -> what the probe varies against the preset (the overrides are in each folder's config.yaml)
PROBES = {
    "sft-r8": "SFT alignment and the preset's attack (LoRA r=8, α_lora=16 on every linear layer, lr 5e-4, 60 steps)",
    "booster-a0.1": "Booster α=0.1 (paper), λ=5, harmful batch 8",
    "booster-a1": "Booster α=1, λ=5, harmful batch 8",
    "booster-a0.01": "Booster α=0.01, λ=5, harmful batch 8",
    "booster-lam20": "Booster α=0.1, λ=20, harmful batch 8",
    "booster-hb16": "Booster α=0.1, λ=5, harmful batch 16",
    "sft-lora-paper": "SFT alignment and attack with the paper's LoRA (r=32, α_lora=4 on q/k/v; lr 5e-4, 60 steps: "
                      "about the paper's lr×steps of 1e-5×2000)",
}
ROW_KEYS = ("method", "task", "n", "p", "seed", "hs", "hs_plus", "fa", "refusal_rate", "over_refusal",
            "hs_before_attack", "fa_before_attack", "over_refusal_before_attack", "hs_prompts", "judge_sha256",
            "topology")


def _diagnostics(points: list[dict]) -> dict:
    pts = [h for h in points if DIAGNOSTIC + "_reduction" in h]
    if not pts:
        return {}
    return {"steps": [h["step"] for h in pts],
            "heldout_harmful_loss": [round(h[DIAGNOSTIC], 4) for h in pts],
            "reduction": [round(h[DIAGNOSTIC + "_reduction"], 4) for h in pts]}


def _step_norms(history: list[dict]) -> dict:
    norms = [h["update_norm"] for h in history if "update_norm" in h]
    if not norms:
        return {}
    return {"min": round(min(norms), 4), "median": round(statistics.median(norms), 4), "max": round(max(norms), 4)}


def collect() -> tuple[list[dict], dict]:
    entries, curves = [], {}
    # Harmful scores by reading (judges/labels/probe_labels.py), where a probe's answers are labeled.
    hand_file = HERE / "hand-scores.json"
    hand = json.loads(hand_file.read_text())["probes"] if hand_file.is_file() else {}
    for name, varied in PROBES.items():
        folder = HERE / name
        if not (folder / "summary.json").is_file():
            continue  # not run yet
        rows = json.loads((folder / "summary.json").read_text())
        hist = json.loads((folder / "histories.json").read_text())
        protocol = json.loads((folder / "protocol.json").read_text())
        for row in rows:
            align_hist = hist.get("align", {}).get(row["method"], [])
            attack = next((a for a in hist.get("attack", []) if a["method"] == row["method"] and a["p"] == row.get("p")
                           and a["seed"] == row.get("seed")), None)
            entry = {"probe": name, "varied": varied, **{k: row.get(k) for k in ROW_KEYS},
                     "diagnostic_alpha": protocol.get("diagnostic_alpha"),
                     "align_diagnostics": _diagnostics(align_hist),
                     "attack_update_norm": _step_norms(attack["history"]) if attack else {}}
            if name in hand:
                entry["by_reading"] = {k: hand[name][k] for k in ("hs_by_reading", "hs_by_reading_95ci",
                                                                  "judge_accuracy", "judge_fnr", "judge_fpr")}
            entries.append(entry)
            if entry["align_diagnostics"]:
                curves[f"{name}"] = entry
    return entries, curves


def plot(curves: dict, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, e in curves.items():
        d = e["align_diagnostics"]
        axes[0].plot(d["steps"], d["heldout_harmful_loss"], marker=".", label=name)
        axes[1].plot(d["steps"], d["reduction"], marker=".", label=name)
        n = e["attack_update_norm"]
        if n:
            axes[2].errorbar([name], [n["median"]], yerr=[[n["median"] - n["min"]], [n["max"] - n["median"]]],
                             fmt="o", capsize=4)
    alphas = sorted({e["diagnostic_alpha"] for e in curves.values() if e["diagnostic_alpha"]})
    axes[0].set_title("held-out harmful loss h(w)")
    axes[1].set_title("reduction after one normalised step (α=%s)" % ", ".join(f"{a:g}" for a in alphas))
    for ax in axes[:2]:
        ax.set_xlabel("alignment step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for a, style in ((1.0, ":"), (0.1, "--"), (0.01, "-.")):  # the α values probed
        axes[2].axhline(a, color="grey", linestyle=style, linewidth=0.8, label=f"α={a:g}")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=8)
    axes[2].tick_params(axis="x", labelsize=8)
    axes[2].set_title("attack step ‖Δw‖ (min, median, max)")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    entries, curves = collect()
    io.write_json(HERE.parent / "calibration.json", entries)
    if curves:
        plot(curves, HERE / "probes.png")
    print(f"{len(entries)} probe rows -> {HERE.parent / 'calibration.json'}")
