"""Would SmolLM2-135M make a better CPU judge than MiniLM? A probe, not a judge
(BENCHMARKS.md, "run 4", quotes this output; provenance script, run from the repository root).

    python judges/labels/measure_smollm2_probe.py [FEATURES.npz]

Features: SmolLM2-135M-Instruct (the packaged GGUF, float32), the chat-rendered question and
answer (question cut to its last 160 tokens, answer to its first 128), the mean over the answer
tokens of the hidden states after layer 4, 8, ..., 30. A logistic regression (L2, standardised
features) is trained on the ``train`` rows of answers.jsonl and answers-round3.jsonl (1,350
answers); its threshold is the minimax-error one on ``calibration``; ``test`` is reported for
every configuration, and the configuration is chosen on ``calibration`` alone. The ensemble
averages the probe's probability with ``answer-judge``'s. Extracting the features takes about
22 minutes on two cores (0.6 s per answer): a judge built this way would miss the 60 s budget
for scoring 300 answers unless truncated, and the probe shows it would not reach the targets.
FEATURES.npz caches them (written when absent)."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from booster.evaluation.judges import load_judge
from booster.evaluation.judges.labels import LABELS_FILE, ROUND3_FILE, load_labels

LAYERS = (4, 8, 12, 16, 20, 24, 30)
L2 = (100.0, 10.0)  # 1/C of the logistic regression
WEIGHTS = (0.3, 0.5, 0.7)  # probe's share in the ensemble


def features(rows: list[dict]) -> np.ndarray:
    from booster.models import load_model

    model, tok = load_model("smollm2-135m-instruct", dtype="float32", padding_side="right")
    end = tok("<|im_end|>", add_special_tokens=False)["input_ids"]

    def encode(q, a):
        pre = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        p = tok(pre, add_special_tokens=False)["input_ids"][-160:]
        ans = tok(a, add_special_tokens=False)["input_ids"][:128] if a.strip() else []
        return p + ans + end, len(p)

    enc = [encode(r["prompt"], r["answer"]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: len(enc[i][0]))  # batches of similar length
    out = np.zeros((len(rows), len(LAYERS), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), 16):
            idx = order[s:s + 16]
            width = max(len(enc[i][0]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id)
            att = torch.zeros((len(idx), width), dtype=torch.long)
            ans = torch.zeros((len(idx), width))
            for j, i in enumerate(idx):
                t, p = enc[i]
                ids[j, :len(t)] = torch.tensor(t)
                att[j, :len(t)] = 1
                ans[j, p:len(t)] = 1
            hs = model(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states
            for k, layer in enumerate(LAYERS):
                out[idx, k] = ((hs[layer] * ans[..., None]).sum(1) / ans.sum(1, keepdim=True)).numpy()
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w ** 2).sum() / 2 / len(yt)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


def minimax_threshold(s: np.ndarray, y: np.ndarray) -> float:
    def worst(t):
        p = s >= t
        return max((~p & (y == 1)).sum() / (y == 1).sum(), (p & (y == 0)).sum() / (y == 0).sum())
    return float(min(np.unique(s), key=worst))


def errors(s: np.ndarray, y: np.ndarray, t: float) -> dict:
    p = s >= t
    return {"accuracy": round(float((p == (y == 1)).mean()), 4),
            "fnr": round(float((~p & (y == 1)).sum() / (y == 1).sum()), 4),
            "fpr": round(float((p & (y == 0)).sum() / (y == 0).sum()), 4)}


def main() -> None:
    rows = load_labels(LABELS_FILE) + load_labels(ROUND3_FILE)
    cache = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if cache is not None and cache.exists():
        feats = np.load(cache)["feats"]
    else:
        torch.set_num_threads(2)
        feats = features(rows)
        if cache is not None:
            np.savez(cache, feats=feats)
    y = np.array([r["harmful"] for r in rows])
    split = np.array([r["split"] for r in rows])
    tr, ca, te = split == "train", split == "calibration", split == "test"
    judge = np.array(load_judge("answer-judge").score([(r["prompt"], r["answer"]) for r in rows]))
    results = []

    def add(name, s):
        t = minimax_threshold(s[ca], y[ca])
        results.append({"config": name, "calibration": errors(s[ca], y[ca], t), "test": errors(s[te], y[te], t)})

    add("answer-judge (threshold re-chosen the same way)", judge)
    for k, layer in enumerate(LAYERS):
        x = feats[:, k]
        x = (x - x[tr].mean(0)) / (x[tr].std(0) + 1e-6)
        for l2 in L2:
            w, b = fit_logistic(x[tr], y[tr], l2)
            probe = 1 / (1 + np.exp(-(x @ w + b)))
            add(f"layer {layer}, l2 {l2:g}", probe)
            for share in WEIGHTS if l2 == L2[0] else ():
                add(f"layer {layer}, l2 {l2:g}, ensemble {share:g} probe + {1 - share:g} answer-judge",
                    share * probe + (1 - share) * judge)
    best = max(results, key=lambda r: r["calibration"]["accuracy"])
    for r in results:
        c, t = r["calibration"], r["test"]
        print(f"{r['config']:60s} calibration {100 * c['accuracy']:.1f} | test {100 * t['accuracy']:.1f} "
              f"FNR {100 * t['fnr']:.1f} FPR {100 * t['fpr']:.1f}")
    print("chosen on calibration:", json.dumps(best))


if __name__ == "__main__":
    main()
