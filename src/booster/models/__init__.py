"""Model loading: short names, local folders and hub ids -> ``(model, tokenizer)``.

    from booster.models import load_model, resolve_model
    model, tok = load_model("smollm2-135m-instruct", dtype="bfloat16")
    resolve_model("smollm2-135m-instruct").identity()   # for results' protocol

Importing this package does not import torch or transformers.
"""

from __future__ import annotations

from booster.lazy import lazy_exports
from booster.models.loading import load_model, load_tokenizer, parse_dtype, prepare_tokenizer
from booster.models.registry import BUILTIN_MODELS, ResolvedModel, resolve_model
from booster.models.tiny import CHATML_TEMPLATE, gpt2_chatml_tokenizer, tiny_random_llama

__all__ = [
    "BUILTIN_MODELS",
    "CHATML_TEMPLATE",
    "ResolvedModel",
    "answer",
    "generate",
    "gpt2_chatml_tokenizer",
    "load_model",
    "load_tokenizer",
    "parse_dtype",
    "prepare_tokenizer",
    "resolve_model",
    "tiny_random_llama",
]


# generation imports torch and transformers at its top: it loads on first use, so that the
# registry (imported by `booster --help` for the model names) does not pull them in
__getattr__, __dir__ = lazy_exports(__name__, {"answer": "generation", "generate": "generation"})
