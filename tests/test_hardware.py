"""The hardware record and the warning before a bf16 run on a machine without native bf16."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import booster.hardware as hardware
from booster.protocol import base_protocol

SETTINGS = {"dtype": "bfloat16", "align.train.mixed_precision": "no",
            "attack.train.mixed_precision": "bf16", "eval.dtype": "float32"}


def test_warning_names_exactly_the_bf16_keys_when_bf16_falls_back_to_the_slow_kernel(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": False)
    assert hardware.bf16_warning(SETTINGS) is None  # the float32 emulation is on by default
    message = hardware.bf16_warning(SETTINGS, emulation=False)
    assert "dtype, attack.train.mixed_precision run(s)" in message
    assert "align.train" not in message and "eval.dtype" not in message
    assert hardware.cpu_capability() in message and "\n" not in message


def test_no_warning_with_native_bf16_or_without_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": True)
    assert hardware.bf16_warning(SETTINGS, emulation=False) is None
    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": False)
    assert hardware.bf16_warning({"dtype": "float32", "eval.dtype": "float32"}, emulation=False) is None


def test_protocol_records_the_vector_unit_and_bf16_support():
    machine = base_protocol()["machine"]
    assert machine["cpu_capability"] == hardware.cpu_capability() != ""
    assert isinstance(machine["bf16_native"], bool) and machine["device"] in ("cpu", "cuda")


def _ints(*shape, seed):
    """Small integers: exact in bf16, and every product and sum of them is exact in float32, so
    any correct bf16 kernel, whatever its summation order, gives these very numbers."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 9, shape, generator=g).float()


def test_float32_products_equal_pytorchs_bf16_kernel_where_the_arithmetic_is_exact():
    x, w, b = _ints(4, 16, seed=0), _ints(6, 16, seed=1), _ints(6, seed=2)
    native = F.linear(x.bfloat16(), w.bfloat16(), b.bfloat16())
    with hardware.Float32BF16Products():
        emulated = F.linear(x.bfloat16(), w.bfloat16(), b.bfloat16())
    assert emulated.dtype == torch.bfloat16 and torch.equal(emulated, native)
    q, k, v = (_ints(1, 2, 5, 8, seed=s) / 8 for s in (3, 4, 5))
    with hardware.Float32BF16Products():
        bmm = torch.bmm(q[0].bfloat16(), k[0].bfloat16().transpose(1, 2))
        attention = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert torch.equal(bmm, torch.bmm(q[0].bfloat16(), k[0].bfloat16().transpose(1, 2)))
    reference = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert attention.dtype == torch.bfloat16
    torch.testing.assert_close(attention, reference, atol=2 ** -7, rtol=2 ** -7)  # softmax is not exact


def test_under_bf16_autocast_inputs_round_to_bf16_and_gradients_round_where_the_native_kernel_rounds():
    """autocast(bf16): F.linear casts float32 inputs to bf16, multiplies, returns bf16; in the
    backward the input gradient leaves the bf16 kernel rounded to bf16. The float32 products
    reproduce both roundings: the forward output and the gradients are bit-identical."""
    x = (_ints(4, 16, seed=0) + 1 / 3).requires_grad_()  # not exact in bf16: autocast must round it
    w = (_ints(6, 16, seed=1) / 3).requires_grad_()
    grad = _ints(4, 6, seed=2) / 7

    def run(mode):
        x.grad = w.grad = None
        with mode, torch.autocast("cpu", dtype=torch.bfloat16):
            out = F.linear(x, w)
        out.backward(grad.bfloat16())
        return out, x.grad.clone(), w.grad.clone()

    import contextlib

    native, emulated = run(contextlib.nullcontext()), run(hardware.Float32BF16Products())
    assert emulated[0].dtype == native[0].dtype == torch.bfloat16
    for a, b in zip(native, emulated):
        # float32 accumulation of exact bf16 products: equal up to summation order, far
        # below one bf16 step (2^-8 relative)
        torch.testing.assert_close(b.float(), a.float(), atol=1e-6, rtol=2 ** -9)
    assert torch.equal(emulated[1], emulated[1].bfloat16().float())  # the input gradient is bf16-rounded


def test_float32_work_passes_through_untouched():
    x, w = torch.randn(3, 5), torch.randn(4, 5)
    with hardware.Float32BF16Products():
        out = F.linear(x, w)
        prod = x @ w.T
    assert out.dtype == torch.float32 and torch.equal(out, F.linear(x, w)) and torch.equal(prod, x @ w.T)


def test_bf16_kernels_and_products_follow_the_hardware(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": True)
    assert hardware.bf16_kernels() == "native"
    assert not isinstance(hardware.bf16_products(), hardware.Float32BF16Products)
    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": False)
    assert hardware.bf16_kernels() == "float32" and hardware.bf16_kernels(emulation=False) == "fallback"
    assert isinstance(hardware.bf16_products(), hardware.Float32BF16Products)
    assert not isinstance(hardware.bf16_products(emulation=False), hardware.Float32BF16Products)


def test_bench_bf16_times_three_modes_on_one_adapter_and_compares_their_gradients(tmp_path, prepared_data, capsys):
    import json

    from booster.cli import main

    out = tmp_path / "bf16.json"
    assert main(["bench", "bf16", "--model", "tiny-random-llama", "--data", str(prepared_data), "--steps", "1",
                 "--length", "32", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    modes = result["results"]
    assert list(modes) == ["float32", "bf16-float32-products", "bf16-pytorch"]
    assert modes["float32"]["x_float32_time"] == 1.0
    assert result["hardware"]["cpu_capability"] == hardware.cpu_capability()
    # the same adapter and batch in every mode: bf16 moves the gradient a little, not wholesale
    for mode, row in modes.items():
        assert set(row["grad_rel_diff"]) == set(modes) - {mode}
        assert all(0 <= d < 0.5 for d in row["grad_rel_diff"].values()), row
    assert modes["float32"]["grad_rel_diff"]["bf16-pytorch"] > 0  # bf16 really ran in bf16
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
