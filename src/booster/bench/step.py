"""Cost of one training step: each defense whose passes the table declares
(``booster.methods.registry``, ``passes``: Booster) against SFT on the same batches and model.

Booster's floor is three forward/backward passes per step (two on the harmful batch, one on
the alignment batch) against SFT's one, so the ratio should approach 3 when the batches are
the same size. Achieved FLOP/s is reported as a share of this machine's matrix-multiply
throughput in the step's compute dtype (bf16 under bf16 weights or autocast, else float32),
measured in the same run: on a CPU without native bf16 (AVX2 only) the bf16 peak is far below
the float32 one, and a share of the wrong peak would read as over 100 %.

FLOPs of a LoRA step: a forward costs 2·P·T multiply-adds-as-FLOPs (P: parameters taking part
in matrix multiplies, including the tied LM head; T: tokens) and the backward through a frozen
base costs another 2·P·T (input gradients only; the adapters' own weight gradients are
negligible), so one forward/backward pass ≈ 4·P·T. Attention's T² terms are included.
"""

from __future__ import annotations

import time

import torch


def matmul_peak_flops(dtype=torch.bfloat16, size: int = 1024, seconds: float = 2.0) -> float:
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * size ** 3 * n / (time.perf_counter() - start)


def pass_flops(model, batch: dict) -> float:
    """≈ FLOPs of one forward+backward pass through a frozen base (see module docstring)."""
    cfg = model.config
    tokens = int(batch["attention_mask"].sum())
    seq = batch["input_ids"].shape[1]
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n)
    if getattr(cfg, "tie_word_embeddings", False):
        matmul_params += cfg.vocab_size * cfg.hidden_size
    attention = 2 * 2 * cfg.num_hidden_layers * seq * cfg.hidden_size * tokens  # QK^T and AV
    return 2 * (2 * matmul_params * tokens + attention)


def bench_step(model_name: str, data_dir, batch_size: int, length: int, steps: int, dtype: str,
               mixed_precision: str, lora_rank: int) -> dict:
    import contextlib

    from booster.data import load_pool
    from booster.methods import StepContext
    from booster.models import load_model, resolve_model
    from booster.models.adapters import LoraSettings, attach_lora
    from booster.protocol import base_protocol
    from booster.training import collate, encode_records

    base, tok = load_model(model_name, dtype=dtype)
    model = attach_lora(base, LoraSettings(rank=lora_rank))
    params = [p for p in model.parameters() if p.requires_grad]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mixed_precision == "bf16" else contextlib.nullcontext
    ctx = StepContext(params=params, autocast=autocast)

    def batches(pool: str) -> list[dict]:
        records = load_pool(data_dir, pool)[: batch_size * steps * 2]
        examples = [e for e in encode_records(tok, records, length)]
        # Pad every example to `length` so both methods see exactly the same token count.
        out = []
        for i in range(steps):
            chunk = examples[i * batch_size:(i + 1) * batch_size]
            b = collate(chunk, tok.pad_token_id)
            pad = length - b["input_ids"].shape[1]
            if pad > 0:
                b = {k: torch.nn.functional.pad(v, (0, pad), value=(tok.pad_token_id if k == "input_ids" else (-100 if k == "labels" else 0)))
                     for k, v in b.items()}
            out.append(b)
        return out

    from booster.methods import registry

    data = {"align": batches("alignment"), "harmful": batches("provider_harmful")}
    timed = [d for d in registry.DEFENSES if d.passes]  # the reference first: it is the first row
    results = {}
    for d in timed:
        method = d.factory(d.config() if d.config else None, steps)  # paper defaults
        method.step(model, {s: [data[s][0]] for s in method.streams}, ctx)  # warm-up
        times = []
        for i in range(steps):
            start = time.perf_counter()
            method.step(model, {s: [data[s][i]] for s in method.streams}, ctx)
            times.append(time.perf_counter() - start)
            ctx.zero_grad()
        results[d.name] = {"seconds_per_step": round(sorted(times)[len(times) // 2], 3),
                           "all_seconds": [round(t, 3) for t in times]}
    compute_dtype = torch.bfloat16 if mixed_precision == "bf16" or dtype == "bfloat16" else torch.float32
    peak = matmul_peak_flops(compute_dtype)
    for d in timed:
        flops = sum(n * sum(pass_flops(model, b) for b in data[s]) / steps for s, n in d.passes)
        r = results[d.name]
        r["flops_per_step"] = flops
        r["achieved_gflops"] = round(flops / r["seconds_per_step"] / 1e9, 1)
        r["share_of_matmul_peak"] = round(flops / r["seconds_per_step"] / peak, 3)
    ref = registry.reference().name
    ratios = {f"{name}_over_{ref}": round(r["seconds_per_step"] / results[ref]["seconds_per_step"], 2)
              for name, r in results.items() if name != ref}
    return {
        "benchmark": "step", "model": resolve_model(model_name).identity(), "dtype": dtype,
        "mixed_precision": mixed_precision, "lora_rank": lora_rank, "batch_size": batch_size,
        "length": length, "steps": steps, "threads": torch.get_num_threads(),
        "matmul_peak_dtype": str(compute_dtype).removeprefix("torch."),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "results": results,
        **ratios,
        "protocol": base_protocol(),
    }
