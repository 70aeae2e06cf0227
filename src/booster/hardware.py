"""What the machine can compute fast, for the protocol and for a warning before a slow run.

bfloat16 is the fast dtype only where the hardware has bf16 matrix units (CPUs with
AVX512-BF16 or AMX, recent GPUs). On a CPU with AVX2 only, PyTorch falls back to a generic
kernel: on this project's 2-core AVX2 machine a SmolLM2 LoRA step (2 x 64 tokens) in bf16 took
15.7 times as long as in float32 (`booster bench bf16`, BENCHMARKS.md). Kernels also round
differently, so the capability is part of every protocol.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=None)
def cpu_capability() -> str:
    """PyTorch's name for the CPU's vector unit: 'AVX2', 'AVX512', 'DEFAULT', ..."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def default_device() -> str:
    """The device a command computes on when none is configured: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def bf16_native(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (not by emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # no oneDNN in this build: no fast bf16 path either
        return False


def describe(device: str | torch.device = "cpu") -> dict:
    """The protocol's hardware entry."""
    device = torch.device(device)
    out = {"device": device.type, "cpu_capability": cpu_capability(), "bf16_native": bf16_native(device)}
    if device.type == "cuda" and torch.cuda.is_available():
        out["cuda_device"] = torch.cuda.get_device_name(device)
    return out


def asks_bf16(settings: dict[str, str]) -> list[str]:
    """The config keys of ``settings`` (config key -> dtype value) that choose bfloat16."""
    return [k for k, v in settings.items() if v in ("bfloat16", "bf16")]


def bf16_warning(settings: dict[str, str], device: str | torch.device = "cpu",
                 emulation: bool = True) -> str | None:
    """One line naming the config keys that ask for bfloat16 when ``device`` has no native bf16
    and the float32 emulation is off (``settings``: config key -> its value, e.g.
    {"dtype": "bfloat16"}); None when all is well."""
    keys = asks_bf16(settings)
    if not keys or bf16_kernels(device, emulation) != "fallback":
        return None
    return (f"this machine has no native bfloat16 ({torch.device(device).type}, {cpu_capability()}) and "
            f"bf16_emulation is false, so {', '.join(keys)} run(s) in PyTorch's generic bf16 kernel, "
            "tens of times slower than float32 (see BENCHMARKS.md); set bf16_emulation=true")


# -- bf16 without bf16 hardware ------------------------------------------------------------
# A native bf16 matrix product (oneDNN on AVX512-BF16/AMX, tensor cores) multiplies bf16
# inputs exactly in float32 (8-bit mantissas: every product fits) and accumulates in float32,
# then rounds the output to bf16. Casting the bf16 inputs to float32, multiplying with the fast
# float32 kernel and rounding the output gives the same numbers up to summation order, with
# the same rounding points in the backward pass (the casts' gradients round where the native
# kernel's bf16 outputs do). Only matrix products are slow in emulated bf16, so only they are
# redirected; elementwise ops keep their bf16 inputs and kernels.
_BF16_PRODUCTS = {torch.nn.functional.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
                  torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm, torch.addmm, torch.baddbmm,
                  torch.nn.functional.scaled_dot_product_attention}


class Float32BF16Products(torch.overrides.TorchFunctionMode):
    """Inside this mode, matrix products that would run in bfloat16 (bf16 inputs, or bf16
    autocast) run as float32 products of the bf16-rounded inputs, with a bf16 output."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _BF16_PRODUCTS:
            return func(*args, **kwargs)
        tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        device = tensors[0].device.type if tensors else "cpu"
        autocast_bf16 = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16
        if not (autocast_bf16 or any(t.dtype == torch.bfloat16 for t in tensors)):
            return func(*args, **kwargs)

        def up(a):  # round to bf16 first (what autocast or a bf16 tensor gives), then widen
            return a.to(torch.bfloat16).float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a

        with torch.autocast(device, enabled=False):
            out = func(*[up(a) for a in args], **{k: up(v) for k, v in kwargs.items()})
        return out.to(torch.bfloat16)


def bf16_kernels(device: str | torch.device = "cpu", emulation: bool = True) -> str:
    """How bf16 matrix products run on ``device``: 'native', 'float32' (:class:`Float32BF16Products`)
    or 'fallback' (PyTorch's generic kernel, emulation switched off)."""
    if bf16_native(device):
        return "native"
    return "float32" if emulation else "fallback"


def bf16_products(device: str | torch.device = "cpu", emulation: bool = True):
    """The context to run bf16 work in: :class:`Float32BF16Products` where ``device`` has no
    native bf16 and ``emulation`` is on, else a no-op."""
    import contextlib

    return Float32BF16Products() if bf16_kernels(device, emulation) == "float32" else contextlib.nullcontext()
