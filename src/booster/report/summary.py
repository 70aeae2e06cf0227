"""Markdown/HTML report and PNG plots of an experiment's summary rows.

Table layout follows the Booster paper's Table 1: one row per method, harmful score (HS) for
each harmful share p and their average, then fine-tune accuracy (FA) the same way; one table
per (task, n). With several seeds a cell reads ``mean ± std`` (sample standard deviation).
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict
from pathlib import Path

from booster import io


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def groups(rows: list[dict]) -> list[tuple[str, int]]:
    """The (task, n) combinations of the attacked runs, in first-seen order."""
    return list(dict.fromkeys((r["task"], r["n"]) for r in rows if r.get("p") is not None))


def paper_table(rows: list[dict], task: str, n: int) -> list[list[str]]:
    """Header + one line per method: HS per p, HS average, FA per p, FA average."""
    attacked = [r for r in rows if r.get("p") is not None and r["task"] == task and r["n"] == n]
    ps = sorted({r["p"] for r in attacked})
    methods = list(dict.fromkeys(r["method"] for r in attacked))
    by = defaultdict(list)
    for r in attacked:
        by[(r["method"], r["p"])].append(r)
    header = ["method"] + [f"HS p={p:g}" for p in ps] + ["HS avg"] + [f"FA p={p:g}" for p in ps] + ["FA avg"]
    table = [header]
    for m in methods:
        line = [m]
        for metric in ("hs", "fa"):
            means = []
            for p in ps:
                vals = [r[metric] for r in by[(m, p)]]
                line.append(_cell(vals))
                if vals:
                    means.append(statistics.mean(vals))
            line.append(f"{statistics.mean(means):.1f}" if means else "–")
        table.append(line)
    return table


def _seed_bars(ax, xs, means, cells, color) -> None:
    """± one standard deviation over seeds, drawn only where a cell has several seeds (a
    one-seed cell has no spread to show, and a zero-length bar would read as "no spread")."""
    multi = [i for i, c in enumerate(cells) if len(c) > 1]
    if multi:
        ax.errorbar([xs[i] for i in multi], [means[i] for i in multi],
                    yerr=[statistics.stdev(cells[i]) for i in multi], fmt="none", ecolor=color, capsize=3)


def cost_table(rows: list[dict]) -> list[list[str]]:
    """Wall time and peak memory of each method's defended stage, relative to SFT's same stage:
    the alignment stage for alignment defenses, the fine-tuning stage for Lisa."""
    attacked = [r for r in rows if r.get("p") is not None]
    if not any(r["method"] == "sft" for r in attacked):
        return []

    def stage_of(r):
        return ("attack", r["attack_seconds"], r.get("attack_peak_rss_mb")) if r.get("finetune") == "lisa" \
            else ("align", r["align_seconds"], r.get("align_peak_rss_mb"))

    def mean(vals):
        vals = [v for v in vals if v is not None]
        return statistics.mean(vals) if vals else None

    # An attack computed with other bf16 kernels (float32 products on a CPU without native bf16,
    # see booster.hardware) costs what that machine costs, not what the method costs: compare
    # attack stages only among rows run with the kernels most of SFT's rows ran with.
    sft = [r for r in attacked if r["method"] == "sft"]
    kernels = statistics.mode([r.get("bf16_kernels") for r in sft])
    attacked = [r for r in attacked if stage_of(r)[0] == "align" or r.get("bf16_kernels") == kernels]
    sft = [r for r in sft if r.get("bf16_kernels") == kernels]
    base = {"align": (mean([r["align_seconds"] for r in sft]), mean([r.get("align_peak_rss_mb") for r in sft])),
            "attack": (mean([r["attack_seconds"] for r in sft]), mean([r.get("attack_peak_rss_mb") for r in sft]))}
    table = [["method", "stage", "seconds", "× SFT time", "peak RSS (MB)", "× SFT memory"]]
    for m in dict.fromkeys(r["method"] for r in attacked):
        mine = [r for r in attacked if r["method"] == m]
        stage = stage_of(mine[0])[0]
        secs = mean([stage_of(r)[1] for r in mine])
        mem = mean([stage_of(r)[2] for r in mine])
        b_secs, b_mem = base[stage]
        table.append([m, stage, f"{secs:.0f}", f"{secs / b_secs:.2f}" if b_secs else "–",
                      f"{mem:.0f}" if mem else "–", f"{mem / b_mem:.2f}" if mem and b_mem else "–"])
    return table


def _markdown(table: list[list[str]]) -> str:
    out = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    out += ["| " + " | ".join(r) + " |" for r in table[1:]]
    return "\n".join(out)


def detail_table(rows: list[dict]) -> list[list[str]]:
    keys = ["method", "task", "n", "p", "seed", "hs", "hs_plus", "fa", "hs_before_attack", "fa_before_attack",
            "refusal_rate", "over_refusal"]
    def fmt(key, v):
        if v is None:
            return "–"
        if key == "p":
            return f"{v:g}"  # 0.05 must not print as 0.1
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    return [keys] + [[fmt(k, r.get(k)) for k in keys] for r in rows]


def seeds_note(rows: list[dict], task: str, n: int) -> str | None:
    """Which cells average several seeds (the table prints them as mean ± sample std)."""
    attacked = [r for r in rows if r.get("p") is not None and r["task"] == task and r["n"] == n]
    seeds = defaultdict(set)
    for r in attacked:
        seeds[r["p"]].add(r["seed"])
    multi = {p: sorted(s) for p, s in sorted(seeds.items()) if len(s) > 1}
    if not multi:
        return None
    where = "; ".join(f"p={p:g}: seeds {', '.join(map(str, s))}" for p, s in multi.items())
    return (f"Cells over several seeds read mean ± sample standard deviation ({where}); other cells are one "
            "seed. Averages are over p of the per-p means.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def plot_hs_vs_p(rows: list[dict], task: str, n: int, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    attacked = [r for r in rows if r.get("p") is not None and r["task"] == task and r["n"] == n]
    for m in dict.fromkeys(r["method"] for r in attacked):
        ps = sorted({r["p"] for r in attacked if r["method"] == m})
        cells = [[r["hs"] for r in attacked if r["method"] == m and r["p"] == p] for p in ps]
        means = [statistics.mean(c) for c in cells]
        line, = ax.plot(ps, means, marker="o", label=m)
        _seed_bars(ax, ps, means, cells, color=line.get_color())
    for r in rows:
        if r["method"] == "unaligned" and r["task"] == task:
            ax.axhline(r["hs"], color="grey", linestyle=":", label="unaligned, no attack")
    ax.set_xlabel("harmful share p in the user's data")
    ax.set_ylabel("harmful score (%)")
    ax.set_title(f"Harmful score after the attack ({task}, n={n})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_before_after(rows: list[dict], task: str, n: int, path: Path) -> float:
    """Bars per method: HS of the aligned model, HS after the attack at p=0.1 (else the largest p;
    mean over seeds, error bar: sample std) and FA after it. Returns the p drawn."""
    attacked = [r for r in rows if r.get("p") is not None and r["task"] == task and r["n"] == n]
    ps = sorted({r["p"] for r in attacked})
    p = 0.1 if 0.1 in ps else ps[-1]
    methods = list(dict.fromkeys(r["method"] for r in attacked))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(methods) + 2.5, 3.8))
    width = 0.27
    series = (("hs_before_attack", "HS before attack"), ("hs", f"HS after attack (p={p:g})"),
              ("fa", f"FA after attack (p={p:g})"))
    for j, (key, label) in enumerate(series):
        cells = [[r[key] for r in attacked if r["method"] == m and r["p"] == p and r.get(key) is not None]
                 for m in methods]
        means = [statistics.mean(c) if c else 0.0 for c in cells]
        xs = [i + (j - 1) * width for i in range(len(methods))]
        ax.bar(xs, means, width, label=label)
        if key != "hs_before_attack":  # one aligned model per method: its rows repeat one number
            _seed_bars(ax, xs, means, cells, color="black")
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title(f"Before and after the attack ({task}, n={n})")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return p


def plot_curves(histories: dict, task: str, n: int, path: Path) -> bool:
    """Harmful training/testing loss during the attack, one line per method (first seed), at
    p=0.1 when it was run, else the largest p."""
    runs = [h for h in histories.get("attack", []) if h["task"] == task and h["n"] == n]
    if not runs:
        return False
    ps = sorted({h["p"] for h in runs})
    p = 0.1 if 0.1 in ps else ps[-1]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    drawn = False
    for ax, probe, title in zip(axes, ("probe/harmful_train_loss", "probe/harmful_test_loss"),
                                ("harmful training loss", "harmful testing loss")):
        seen = set()
        for run in runs:
            if run["p"] != p or run["method"] in seen:
                continue
            pts = [(h["step"], h[probe]) for h in run["history"] if probe in h]
            if pts:
                seen.add(run["method"])
                drawn = True
                ax.plot(*zip(*pts), marker=".", label=run["method"])
        ax.set_title(f"{title} ({task}, p={p:g})")
        ax.set_xlabel("attack step")
        ax.grid(alpha=0.3)
        if seen:
            ax.legend()
    axes[0].set_ylabel("loss")
    fig.tight_layout()
    if drawn:
        _save(fig, path)
    plt.close(fig)
    return drawn


def judge_note(judge: dict) -> str:
    """The line printed under every HS table: which judge, and how wrong it was measured to be."""
    t = judge.get("threshold")
    head = (f"HS judged by `{judge.get('name', '?')}` (sha256 {str(judge.get('sha256', '?'))[:12]}, "
            f"threshold {t:.4f})" if isinstance(t, (int, float)) else
            f"HS judged by `{judge.get('name', '?')}` (sha256 {str(judge.get('sha256', '?'))[:12]})")
    t = judge.get("hand_labeled_test")
    if not t:
        return head + "; its error on hand-labeled answers was not measured, so read these HS with care."
    return (head + f"; on {t['n']} hand-labeled answers of this project's models (docs/judging.md) it has "
            f"accuracy {100 * t['accuracy']:.1f}%, FNR {100 * t['fnr']:.1f}%, FPR {100 * t['fpr']:.1f}%.")


def write_report(out: Path, rows: list[dict], histories: dict, protocol: dict) -> None:
    cfg = protocol["config"]
    judge = protocol.get("judge") or {}
    jnote = judge_note(judge)
    intro = (f"Model `{cfg['model']}` ({cfg['dtype']}), LoRA r={cfg['lora']['rank']} α={cfg['lora']['alpha']}, "
             f"attack topology `{cfg['attack']['topology']}`; harmful prompts: {protocol['harmful_prompts']} set, "
             f"{cfg['eval']['hs_prompts']} prompts, greedy, {cfg['eval']['max_new_tokens']} new tokens; judge "
             f"`{judge.get('name', '?')}` ({str(judge.get('sha256', '?'))[:12]}); commit `{protocol.get('git_commit')}`.")
    md = [f"# {cfg['name']}", "", intro, ""]
    sections = []  # (title, table, image or None) for both renderings
    for task, n in groups(rows):
        several_p = len({r["p"] for r in rows if r.get("p") is not None and r["task"] == task and r["n"] == n}) > 1
        image = f"hs_vs_p-{task}-n{n}.png" if several_p else None
        if image:
            plot_hs_vs_p(rows, task, n, out / image)
        sections.append((f"HS (lower is better) and FA after the attack: {task}, n={n}", paper_table(rows, task, n), image))
        sections.append((None, jnote, None))
        bars = f"before_after-{task}-n{n}.png"
        p_drawn = plot_before_after(rows, task, n, out / bars)
        sections.append((f"HS before and after the attack (p={p_drawn:g}): {task}, n={n}", None, bars))
        sections.append((None, jnote, None))
        note = seeds_note(rows, task, n)
        if note:
            sections.append((None, note, None))
        curves = f"attack_curves-{task}-n{n}.png"
        if plot_curves(histories, task, n, out / curves):
            sections.append((f"Harmful training and testing loss during the attack: {task}, n={n}", None, curves))
    cost = cost_table(rows)
    if cost:
        sections.append(("Cost of each defense's stage, relative to SFT", cost, None))
        sections.append((None, "Wall time and peak resident memory of the stages as this grid ran them: thread "
                               "count and machine load were not controlled; attack stages run with other bf16 kernels than most of "
                               "SFT's (`bf16_kernels`) are left out. `booster bench methods CONFIG` "
                               "measures the controlled ratios (BENCHMARKS.md).", None))
    sections.append(("Every run", detail_table(rows), None))
    sections.append((None, jnote, None))
    for title, table, image in sections:
        if title is None:  # a note under the section before
            md += [table, ""]
            continue
        md += [f"## {title}", ""]
        if table:
            md += [_markdown(table), ""]
        if image:
            md += [f"![{title}]({image})", ""]
    md += ["The full protocol (data pool sizes and hashes, p definition, configs, judge identity, package "
           "versions, every stage's inputs) is in `protocol.json`.", ""]
    io.write_text(out / "report.md", "\n".join(md))

    esc = html.escape

    def html_table(t):
        head = "".join(f"<th>{esc(c)}</th>" for c in t[0])
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in t[1:])
        return f"<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"

    parts = [f"<h1>{esc(cfg['name'])}</h1><p>{esc(intro)}</p>"]
    for title, table, image in sections:
        if title is None:
            parts.append(f"<p>{esc(table)}</p>")
            continue
        parts.append(f"<h2>{esc(title)}</h2>")
        if table:
            parts.append(html_table(table))
        if image:
            parts.append(f"<p><img src='{esc(image)}'></p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(cfg['name'])}</title></head>"
            f"<body style='font-family:sans-serif'>{''.join(parts)}</body></html>")
    io.write_text(out / "report.html", page)
