"""Load a causal LM and its tokenizer, safely (safetensors only, no remote code) and offline-first."""

from __future__ import annotations

import os
from typing import Any

from booster.errors import BoosterError
from booster.models.registry import ResolvedModel, resolve_model

_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}  # fmt: skip


def parse_dtype(dtype: Any):
    """``None`` -> float32; names (``bfloat16``/``bf16``, ``float16``/``fp16``, ``float32``/``fp32``)
    or a ``torch.dtype`` -> that dtype; ``"auto"`` -> the checkpoint's dtype."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise BoosterError(f"model dtype must be a floating-point type, got {dtype}")
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key == "auto":
        return "auto"
    if key not in _DTYPES:
        raise BoosterError(f"unknown dtype '{dtype}' (choose from float32, bfloat16, float16, auto)")
    return getattr(torch, _DTYPES[key])


def _parse_device(device: Any):
    import torch

    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise BoosterError(f"unknown device '{device}': {e}") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise BoosterError(f"device '{device}' requested but CUDA is not available")
    return target


def _as_resolved(name_or_path) -> ResolvedModel:
    return name_or_path if isinstance(name_or_path, ResolvedModel) else resolve_model(name_or_path)


def _check_causal_lm(resolved: ResolvedModel) -> None:
    """Refuse configs transformers cannot load as a causal LM without custom code, and
    checkpoints of another head (e.g. an encoder such as BertModel, whose LM head would be
    randomly initialised)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from booster.data.userdata import load_json_file

    try:  # bounded: a hostile config.json (deep nesting) is an error, not a RecursionError
        cfg = load_json_file(resolved.path / "config.json")
    except BoosterError as e:
        raise BoosterError(f"model '{resolved.name}': cannot read config.json ({e})") from None
    if not isinstance(cfg, dict):
        raise BoosterError(f"model '{resolved.name}': {resolved.path / 'config.json'}: expected a JSON object, "
                           f"got {type(cfg).__name__}")
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or (archs and not causal.intersection(archs)):
        raise BoosterError(
            f"model '{resolved.name}' is not a causal language model "
            f"(model_type '{model_type}', architectures {', '.join(archs) or 'none'}); custom code is never run"
        )


def prepare_tokenizer(tokenizer, padding_side: str = "left"):
    """Give a tokenizer a pad token (its eos if it has none) and the requested padding side."""
    if padding_side not in ("left", "right"):
        raise BoosterError(f"padding_side must be 'left' or 'right', got '{padding_side}'")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise BoosterError(f"tokenizer '{tokenizer.name_or_path}' has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_tokenizer(name_or_path: str | os.PathLike | ResolvedModel, *, padding_side: str = "left"):
    """The model's tokenizer, with a pad token and ``padding_side`` (left: right for batched
    generation; training code may ask for right)."""
    from transformers import AutoTokenizer

    resolved = _as_resolved(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(
        str(resolved.path), local_files_only=True, trust_remote_code=False
    )
    return prepare_tokenizer(tokenizer, padding_side)


def load_model(
    name_or_path: str | os.PathLike | ResolvedModel,
    *,
    dtype: Any = None,
    device: Any = "cpu",
    padding_side: str = "left",
):
    """Load ``(model, tokenizer)`` for a short name, local folder or hub id (see
    :func:`~booster.models.registry.resolve_model`). Weights are read from safetensors only;
    ``dtype`` defaults to float32 (``"bfloat16"`` is ~2.8x faster on CPUs with bf16 matmul).
    The model is returned in eval mode; its config/generation config carry the pad token."""
    from transformers import AutoModelForCausalLM

    from booster.models.convert import quiet_progress

    resolved = _as_resolved(name_or_path)
    torch_dtype = parse_dtype(dtype)
    target = _parse_device(device)
    _check_causal_lm(resolved)
    try:
        with quiet_progress():
            model, info = AutoModelForCausalLM.from_pretrained(
                str(resolved.path),
                dtype=torch_dtype,
                use_safetensors=True,
                local_files_only=True,
                trust_remote_code=False,
                output_loading_info=True,
            )
    except OSError as e:  # e.g. a shard missing from a partial HF-cache snapshot
        raise BoosterError(f"cannot load model '{resolved.name}' from {resolved.path}: {e}") from None
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise BoosterError(
            f"model '{resolved.name}': the checkpoint lacks {len(missing)} weight(s) of "
            f"{type(model).__name__} ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    model.to(target)
    model.eval()
    tokenizer = load_tokenizer(resolved, padding_side=padding_side)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
