"""Generation throughput: generated tokens per second at several batch sizes.

The same prompts are answered at every batch size (greedy, so the answers are identical and
only the batching differs); batch size 1 is the one-at-a-time path. At the largest batch size
the same prompts are answered once more by transformers' own ``model.generate``, which keeps
finished rows in the batch, against booster's loop, which drops them: same answers expected,
the ratio is what dropping them saves. Ratios measured in one run are the numbers to quote:
absolute speeds vary with the machine's load.
"""

from __future__ import annotations

import time

import torch

from booster.models.generation import generate, transformers_greedy


def bench_generation(model, tokenizer, conversations: list[list[dict]], batch_sizes=(1, 8, 32),
                     max_new_tokens: int = 64, progress: bool = True) -> list[dict]:
    rows = []
    generate(model, tokenizer, conversations[:2], max_new_tokens=4, batch_size=2, progress=False)  # warm-up
    reference = None
    # decoders by the function that runs them: ours drops finished rows, transformers' keeps them
    runs = [(bs, "greedy_batch") for bs in batch_sizes] + [(max(batch_sizes), "model.generate")]
    for bs, decoder in runs:
        decode = {"model.generate": transformers_greedy}.get(decoder)
        start = time.perf_counter()
        gens = generate(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=bs,
                        desc=f"batch {bs} ({decoder})", progress=progress, **({"decode": decode} if decode else {}))
        seconds = time.perf_counter() - start
        tokens = sum(g.new_tokens for g in gens)
        texts = [g.text for g in gens]
        reference = reference or texts
        rows.append({"batch_size": bs, "decoder": decoder, "prompts": len(conversations),
                     "generated_tokens": tokens, "seconds": round(seconds, 2),
                     "tokens_per_second": round(tokens / seconds, 1), "same_answers_as_first": texts == reference})
    base = rows[0]["tokens_per_second"]
    for row in rows:
        row["speedup_vs_batch_%d" % batch_sizes[0]] = round(row["tokens_per_second"] / base, 2)
    ours, theirs = rows[len(batch_sizes) - 1], rows[-1]
    theirs["greedy_batch_speedup"] = round(ours["tokens_per_second"] / theirs["tokens_per_second"], 2)
    return rows


def main_generation(model_name: str, data_dir, n_prompts: int, max_new_tokens: int, batch_sizes, dtype: str,
                    threads: int | None, pool: str = "validation_prompts") -> dict:
    from booster.data import load_pool
    from booster.models import load_model, resolve_model
    from booster.protocol import base_protocol

    if threads:
        torch.set_num_threads(threads)
    # Validation prompts: benchmarking must not touch the evaluation prompts either.
    records = load_pool(data_dir, pool)[:n_prompts]
    model, tok = load_model(model_name, dtype=dtype)
    rows = bench_generation(model, tok, [r["messages"] for r in records], batch_sizes, max_new_tokens)
    return {"benchmark": "generation", "model": resolve_model(model_name).identity(), "dtype": dtype, "pool": pool,
            "max_new_tokens": max_new_tokens, "rows": rows, "protocol": base_protocol()}
