"""Cost of bfloat16 on a machine without native bf16: one LoRA training step (forward and
backward, bf16 base weights under bf16 autocast) with PyTorch's own bf16 kernels, with bf16
matrix products run as float32 products (:class:`booster.hardware.Float32BF16Products`), and
in plain float32, on the same batch and adapter; plus how far apart their gradients are, so
the emulation's error can be read against bf16's own distance from float32.
"""

from __future__ import annotations

import contextlib
import time

import torch


def bench_bf16(model_name: str, data_dir, batch_size: int, length: int, steps: int, lora_rank: int,
               modes: tuple[str, ...] = ("float32", "bf16-float32-products", "bf16-pytorch")) -> dict:
    from booster.data import load_pool
    from booster.hardware import Float32BF16Products, describe
    from booster.models import load_model, resolve_model
    from booster.models.adapters import LoraSettings, attach_lora
    from booster.protocol import base_protocol
    from booster.training import collate, encode_records

    results, grads = {}, {}
    for mode in modes:
        dtype = "float32" if mode == "float32" else "bfloat16"
        base, tok = load_model(model_name, dtype=dtype)
        model = attach_lora(base, LoraSettings(rank=lora_rank), seed=0)  # the same adapter in every mode
        batch = collate(encode_records(tok, load_pool(data_dir, "alignment")[:batch_size], length), tok.pad_token_id)
        products = Float32BF16Products() if mode == "bf16-float32-products" else contextlib.nullcontext()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
        times, loss = [], None
        for i in range(steps + 1):  # the first step warms up and is not timed
            model.zero_grad()
            start = time.perf_counter()
            with products, autocast:
                out = model(**batch)
            out.loss.backward()
            if i:
                times.append(time.perf_counter() - start)
            loss = out.loss.item()
        grads[mode] = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.requires_grad])
        results[mode] = {"seconds_per_step": round(sorted(times)[len(times) // 2], 3),
                         "all_seconds": [round(t, 3) for t in times], "loss": loss}
    ref = modes[0]
    for mode in modes:
        r = results[mode]
        r["x_float32_time"] = round(r["seconds_per_step"] / results[ref]["seconds_per_step"], 2)
        r["grad_rel_diff"] = {other: round(((grads[mode] - grads[other]).norm() / grads[other].norm()).item(), 4)
                              for other in modes if other != mode}
    return {"benchmark": "bf16", "model": resolve_model(model_name).identity(), "batch_size": batch_size,
            "length": length, "steps": steps, "lora_rank": lora_rank, "threads": torch.get_num_threads(),
            "hardware": describe("cpu"), "results": results, "protocol": base_protocol()}
