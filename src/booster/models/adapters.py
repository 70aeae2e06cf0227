"""LoRA adapters through peft: attach, save (safetensors only), load, merge.

The fine-tuning-as-a-service topology this project studies: the provider aligns with a LoRA
adapter, merges it into the base, and the user's fine-tuning trains a fresh adapter on the
merged model (the "fresh" topology). The alternative "continue" topology keeps training the
alignment adapter (as the Booster paper's own runs did); results record which one was used.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from pathlib import Path

from booster.config import option
from booster.errors import BoosterError, ConfigError, DataError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoraSettings:
    rank: int = option(8, "LoRA rank r (the Vaccine/Lisa/Booster papers report r=32 on 7B models)")
    alpha: float = option(16.0, "LoRA scaling numerator: updates are scaled by alpha / rank (those papers: 4)")
    dropout: float = option(0.0, "dropout on the LoRA input (0 keeps steps deterministic and cheap)")
    target_modules: list[str] = option(
        factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        help="module names that get adapters (Llama naming)")

    def validate(self):
        if self.rank < 1:
            raise ConfigError(f"rank must be >= 1, got {self.rank}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("target_modules must name at least one module")


def attach_lora(model, settings: LoraSettings, seed: int = 0):
    """Wrap ``model`` with a fresh trainable LoRA adapter; base weights are frozen.

    The adapter's random initialisation is drawn from ``seed`` (in a forked RNG), so the same
    stage gives the same adapter whatever ran before it in the process: a cached earlier stage
    or another process must not change the starting point."""
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            peft_model = get_peft_model(model, config)
    except ValueError as e:  # e.g. a target module name the architecture does not have
        raise BoosterError(f"cannot attach LoRA: {str(e).splitlines()[0]}") from None
    # Adapters train in float32 even on a bf16 base (their updates are tiny relative to bf16 ulp).
    for p in peft_model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return peft_model


def save_adapter(peft_model, folder: Path) -> None:
    """Write adapter_config.json + adapter_model.safetensors (never a pickle)."""
    peft_model.save_pretrained(str(folder), safe_serialization=True)


def check_adapter_folder(folder: Path) -> None:
    """Refuse, with a one-line BoosterError, anything but a readable safetensors LoRA adapter
    folder. Cheap (no torch, no peft): callers run it before loading any model."""
    folder = Path(folder)
    try:
        mode = folder.stat().st_mode
    except OSError as e:
        raise BoosterError(f"adapter folder '{folder}' {_path_problem(e)}") from None
    if not stat.S_ISDIR(mode):
        raise BoosterError(f"adapter path '{folder}' is a file, not an adapter folder "
                           f"(expected a folder with {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    if not (folder / ADAPTER_CONFIG).is_file():
        raise BoosterError(f"adapter folder '{folder}' has no {ADAPTER_CONFIG}")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise BoosterError(f"adapter folder '{folder}' has no {ADAPTER_WEIGHTS} "
                           "(only safetensors adapters are loaded, never pickled .bin files)")
    check_adapter_config(folder / ADAPTER_CONFIG)


def _path_problem(e: OSError) -> str:
    from booster.data.userdata import SYMLINK_LOOP

    if e.errno == errno.ELOOP:
        return SYMLINK_LOOP
    if e.errno == errno.ENOENT:
        return "does not exist"
    return f"cannot be read: {e.strerror or e}"


# What peft reads from adapter_config.json before anything is checked: a wrong type there
# surfaces as a KeyError/TypeError deep inside peft, so these are checked here first.
_CONFIG_TYPES = {"r": (int,), "lora_alpha": (int, float), "lora_dropout": (int, float),
                 "target_modules": (list, str, type(None))}


def check_adapter_config(path: Path) -> dict:
    """The parsed ``adapter_config.json`` of a LoRA adapter; DataError naming ``path`` and the key."""
    from booster.config import quote
    from booster.data.userdata import load_json_file

    cfg = load_json_file(path)
    if not isinstance(cfg, dict):
        raise DataError(path, f"not a peft adapter config (expected a JSON object with 'peft_type', "
                              f"got {type(cfg).__name__})")
    if "peft_type" not in cfg:
        raise DataError(path, "not a peft adapter config: 'peft_type' is missing (a LoRA adapter has \"peft_type\": \"LORA\")")
    if cfg["peft_type"] != "LORA":
        raise DataError(path, f"peft_type is {quote(cfg['peft_type'])}; only LoRA adapters (\"LORA\") are supported")
    for key, types in _CONFIG_TYPES.items():
        value = cfg.get(key)
        if key in cfg and (isinstance(value, bool) or not isinstance(value, types)):
            raise DataError(path, f"'{key}' has the wrong type ({type(value).__name__}: {quote(value)})")
    if isinstance(cfg.get("r"), int) and cfg["r"] < 1:
        raise DataError(path, f"'r' must be >= 1, got {cfg['r']}")
    return cfg


def load_adapter(model, folder: Path, *, trainable: bool = False):
    """Attach the adapter saved in ``folder`` to ``model`` (a PeftModel)."""
    from peft import PeftModel
    from safetensors import SafetensorError

    check_adapter_folder(folder)
    try:
        return PeftModel.from_pretrained(model, str(folder), is_trainable=trainable, use_safetensors=True)
    except (KeyError, TypeError, ValueError, SafetensorError) as e:
        # What the cheap checks cannot see: modules the model lacks, a corrupt weights file.
        raise BoosterError(f"cannot load adapter '{folder}': {_first_line(e)}") from None
    except RuntimeError as e:
        if "state_dict" not in str(e):  # only a shape mismatch with this base model is the user's
            raise
        raise BoosterError(f"adapter '{folder}' does not fit this model ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def apply_adapter(model, folder: Path):
    """Load the adapter in ``folder`` and merge it into the base weights (a plain model)."""
    return load_adapter(model, folder).merge_and_unload()
