"""Cached, resumable stages: align → attack → evaluate.

Each stage's output lives in ``CACHE/<stage>/<key>/`` where ``key`` hashes every input that
can change the output (model identity, data pool hashes, method and training configs, the
upstream stage's key). A stage is done when its folder exists: it is built in
``<key>.work/`` (which also holds the training checkpoint, so a killed stage resumes) and
renamed into place at the end. An aligned model is therefore trained once and reused by every
attack, and a grid killed at any point restarts where it stopped.

The cache lives on one machine. A run folder also keeps a *ledger* (``OUT/stages``): every
stage's records (stage.json, training history, answers, scored samples) without its weights.
A fresh checkout imports the ledger into its cache, so a grid that spans sessions never redoes
a finished stage; when a new stage needs the weights of an imported one (a new attack on an
aligned model, new answers of an attacked model), that adapter is retrained from the same
inputs under the same key.

Several runs may share one cache: each stage is computed under a lock
(``CACHE/<stage>/<key>.lock``), so a run that reaches a stage another run is computing waits for
it, then reuses what it wrote instead of computing it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from booster import io
from booster.config import to_dict
from booster.errors import BoosterError
from booster.pipeline.config import HARMFUL_DATA_METHODS, ExperimentConfig
from booster.pipeline.resources import measure


# Bumped whenever a stage's behaviour changes for the same inputs, so older cache entries are
# not reused (2: LoRA initialisation seeded per stage).
STAGE_VERSION = 2


def key_identity(identity: dict) -> dict:
    """The part of a model's or judge's identity that stage keys hash: its content (weight
    hashes, source), not where it lies on this machine or when it was converted, so that a
    ledger written on another machine matches. An identity without weight hashes keeps its path."""
    if not (identity.get("weights_sha256") or identity.get("sha256")):
        return identity

    def strip(d: dict) -> dict:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in ("path", "created")}

    return strip(identity)


def pool_sha256(manifest: dict, data_dir: Path, name: str) -> str:
    """The hash of one prepared pool, from the data folder's manifest."""
    try:
        return manifest["pools"][name]["sha256"]
    except KeyError:
        raise BoosterError(f"data pool '{name}' is missing from {data_dir}/manifest.json "
                           "(re-run `booster data prepare`)") from None


def eval_tasks(cfg: ExperimentConfig, task: str):
    """(task, number of prompts) evaluated for a user task: HS, that task's FA, over-refusal, then
    ``eval.extra_tasks`` (``eval.extra_prompts`` each, or the task's declared default)."""
    from booster.tasks import TASKS

    e = cfg.eval
    val = e.prompts == "validation"
    hs, over = TASKS["hs_val" if val else "hs"], TASKS["over_refusal_val" if val else "over_refusal"]
    return [(hs, e.hs_prompts), (TASKS[task], e.fa_samples_by_task.get(task, e.fa_samples)),
            (over, e.over_refusal_prompts)] + [(TASKS[x], e.extra_prompts) for x in dict.fromkeys(e.extra_tasks)
                                             if x != task]


def digest(obj) -> str:
    return io.sha256_text(json.dumps({"stage_version": STAGE_VERSION, **obj}, sort_keys=True, default=str))[:16]


@dataclass
class StageResult:
    kind: str
    key: str
    path: Path
    record: dict

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"


class Stages:
    """The three stages for one experiment config, sharing one data folder and cache."""

    def __init__(self, cfg: ExperimentConfig, *, progress: bool = True, judge=None):
        import torch

        from booster.data import load_manifest
        from booster.models import resolve_model

        self.cfg, self.progress = cfg, progress
        self.cache = Path(cfg.cache)
        self.data_dir = Path(cfg.data.dir)
        self.manifest = load_manifest(self.data_dir)
        self.model_identity = resolve_model(cfg.model).identity()  # recorded in the protocol
        self.model_key = key_identity(self.model_identity)  # hashed into stage keys
        # Under `accelerate launch` / `torchrun` every process runs the stages: all of them train
        # (the loop sums gradients over processes), the main one writes the cache and evaluates.
        from accelerate import PartialState

        self.state = PartialState(cpu=not torch.cuda.is_available())
        self.device = self.state.device
        self._judge = judge  # None: load cfg.eval.judge on first use
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        from booster.hardware import asks_bf16, bf16_kernels

        # How bf16 matrix products run here (None: the config computes in float32 throughout);
        # recorded in every stage, since it changes the rounding, not the experiment.
        self.bf16_kernels = (bf16_kernels(self.device, cfg.bf16_emulation)
                             if asks_bf16(cfg.dtype_settings()) else None)

    # -- helpers ---------------------------------------------------------------------------
    def pool_hash(self, name: str) -> str:
        return pool_sha256(self.manifest, self.data_dir, name)

    def pool(self, name: str) -> list[dict]:
        from booster.data import load_pool

        return load_pool(self.data_dir, name)

    def sample(self, name: str, n: int, salt: str) -> list[dict]:
        records = self.pool(name)
        if n > len(records):
            raise BoosterError(f"asked for {n} samples of pool '{name}', which has {len(records)}")
        return random.Random(f"{self.cfg.data.seed}:{salt}").sample(records, n)

    def base_model(self, dtype: str | None = None):
        from booster.models import load_model

        return load_model(self.cfg.model, dtype=dtype or self.cfg.dtype, device=self.device)

    def judge(self):
        """The judge of the harmful score, or None when ``eval.judge`` is 'none'."""
        if self._judge is None and self.cfg.eval.judge != "none":
            from booster.evaluation.judge import load_judge

            self._judge = load_judge(self.cfg.eval.judge, device=self.device)
        return self._judge

    def _cached(self, kind: str, key: str) -> Path | None:
        path = self.cache / kind / key
        return path if (path / "stage.json").exists() else None

    def _reusable(self, kind: str, key: str, rebuild: bool = False) -> StageResult | None:
        """The finished stage, or None when it must be computed (``rebuild``: its adapter is missing)."""
        path = self._cached(kind, key)
        if path is None or (rebuild and not (path / "adapter").exists()):
            return None
        return self._load(kind, key)

    @contextlib.contextmanager
    def _lock(self, kind: str, key: str, *, every_process: bool = False):
        """Compute one stage alone: another run on this cache that holds the stage's lock is
        waited for (with a message), and the caller then checks the cache again.

        Only the main process takes the lock (the others of a distributed run would otherwise
        wait for it); with ``every_process``, for stages every process computes, the others wait
        at a barrier until it holds the lock, so that all of them then see the same cache."""
        def say_waiting():
            print(f"booster: waiting for stage {kind}/{key} (locked by another run on {self.cache})",
                  file=sys.stderr, flush=True)

        lock = (io.file_lock(self.cache / kind / f"{key}.lock", on_wait=say_waiting)
                if self.state.is_main_process else contextlib.nullcontext())
        with lock:
            if every_process:
                self.state.wait_for_everyone()
            yield

    def _finish(self, kind: str, key: str, work: Path, record: dict) -> StageResult:
        shutil.rmtree(work / "checkpoint", ignore_errors=True)
        final = self.cache / kind / key
        if (final / "stage.json").exists():  # a rebuilt adapter of a stage imported from a ledger
            os.replace(work / "adapter", final / "adapter")  # the recorded results stay as they were
            shutil.rmtree(work)
            return self._load(kind, key)
        io.write_json(work / "stage.json", record)
        os.replace(work, final)
        return StageResult(kind, key, final, record)

    # -- ledger: the cache without its weights ----------------------------------------------
    LEDGER_SKIP = ("adapter", "checkpoint", "*.work")

    def export_ledger(self, results: list[StageResult], dest: Path) -> None:
        """Write the records of ``results`` and of the answers they scored (not their adapters)
        to ``dest/<kind>/<key>/``."""
        paths = {(r.kind, r.key): r.path for r in results}
        for r in results:
            if r.kind == "eval":  # the answers, so that another judge rescores without the weights
                paths[("generate", r.record["generate"])] = self.cache / "generate" / r.record["generate"]
        with io.atomic_dir(dest) as tmp:
            for (kind, key), path in sorted(paths.items()):
                shutil.copytree(path, tmp / kind / key, ignore=shutil.ignore_patterns(*self.LEDGER_SKIP))

    def import_ledger(self, src: Path) -> int:
        """Copy the ledger's stages that this cache lacks; returns how many were imported."""
        n = 0
        for stage_json in sorted(Path(src).glob("*/*/stage.json")):
            kind, key = stage_json.parent.parent.name, stage_json.parent.name
            if kind not in ("align", "attack", "generate", "eval") or self._cached(kind, key):
                continue
            with self._lock(kind, key):  # not under another run that is computing or importing it
                if not self._cached(kind, key):
                    with io.atomic_dir(self.cache / kind / key) as tmp:
                        shutil.copytree(stage_json.parent, tmp, dirs_exist_ok=True)
                    n += 1
        return n

    def with_adapter(self, result: StageResult | None) -> StageResult | None:
        """``result`` with its adapter on disk: a stage imported from a ledger has none, so it is
        retrained from the same inputs (same key; equal up to floating-point nondeterminism)."""
        if result is None or result.adapter.exists():
            return result
        rec = result.record
        if result.kind == "align":
            rebuilt = self.align(rec["method"], rebuild=True)
        else:
            align = self._load("align", rec["align"]) if rec.get("align") else None
            rebuilt = self.attack(align, rec["task"], rec["n"], rec["p"], rec["seed"],
                                  finetune=rec.get("finetune", "sft"), rebuild=True)
        if rebuilt.key != result.key:
            raise BoosterError(f"cannot rebuild the adapter of {result.kind} stage {result.key}: this config "
                               f"gives key {rebuilt.key} for the same stage (the config changed)")
        return rebuilt

    def _finish_trained(self, kind: str, key: str, work: Path, record: dict, model, history) -> StageResult:
        """Save the trained adapter and close the stage (main process), then sync everyone."""
        from booster.models.adapters import save_adapter

        if self.state.is_main_process:
            save_adapter(model, work / "adapter")
            io.write_json(work / "history.json", history)
            self._finish(kind, key, work, record)
        self.state.wait_for_everyone()
        return self._load(kind, key)

    def _load(self, kind: str, key: str) -> StageResult:
        path = self.cache / kind / key
        return StageResult(kind, key, path, json.loads((path / "stage.json").read_text()))

    def _train(self, model, method, data: dict, train_cfg, work: Path, tokenizer, probes=None) -> list[dict]:
        from booster.training import train

        return train(model, method, data, train_cfg, pad_id=tokenizer.pad_token_id, out_dir=work,
                     probes=probes, progress=self.progress)

    # -- alignment ---------------------------------------------------------------------------
    def _align_runner(self, method: str):
        from booster.methods import SFT, Booster, RepNoise, Vaccine

        a = self.cfg.align
        return {"sft": lambda: SFT(), "booster": lambda: Booster(a.booster), "vaccine": lambda: Vaccine(a.vaccine),
                "repnoise": lambda: RepNoise(a.repnoise)}[method]()

    def align_key(self, method: str) -> str:
        a = self.cfg.align
        runner = self._align_runner(method)
        uses_harmful = method in HARMFUL_DATA_METHODS
        return digest({
            "stage": "align", "model": self.model_key, "dtype": self.cfg.dtype, "lora": to_dict(self.cfg.lora),
            "method": method, "method_config": to_dict(getattr(runner, "config", None)) if method != "sft" else None,
            "train": to_dict(a.train), "samples": a.samples,
            "harmful_samples": a.harmful_samples if uses_harmful else None,
            "pools": {p: self.pool_hash(p) for p in ("alignment",) + (("provider_harmful",) if uses_harmful else ())},
            "data_seed": self.cfg.data.seed,
        })

    def align(self, method: str, rebuild: bool = False) -> StageResult:
        """The aligned adapter of ``method`` (cached); ``rebuild``: retrain a cached stage's
        missing adapter (see :meth:`with_adapter`)."""
        key = self.align_key(method)
        with self._lock("align", key, every_process=True):  # every process decides under it
            return self._reusable("align", key, rebuild) or self._align(method, key)

    def _align(self, method: str, key: str) -> StageResult:
        from booster.models.adapters import attach_lora
        from booster.training import encode_records

        a = self.cfg.align
        work = self.cache / "align" / f"{key}.work"
        record = {"stage": "align", "key": key, "method": method, "bf16_kernels": self.bf16_kernels}
        with measure(record):
            base, tok = self.base_model()
            model = attach_lora(base, self.cfg.lora, seed=a.train.seed)
            max_len = a.train.max_length
            data = {"align": encode_records(tok, self.sample("alignment", a.samples, "align"), max_len)}
            if method in HARMFUL_DATA_METHODS:
                data["harmful"] = encode_records(tok, self.sample("provider_harmful", a.harmful_samples, "harmful"), max_len)
            history = self._train(model, self._align_runner(method), data, a.train, work, tok)
        return self._finish_trained("align", key, work, record, model, history)

    # -- attack (the user's fine-tuning) ----------------------------------------------------
    def _lisa(self):
        from dataclasses import replace

        from booster.methods import Lisa

        k = self.cfg.attack
        return Lisa(replace(k.lisa, total_steps=k.train.steps))

    def attack_key(self, align: StageResult | None, finetune: str, task: str, n: int, p: float, seed: int) -> str:
        k = self.cfg.attack
        return digest({
            "stage": "attack", "model": self.model_key, "dtype": self.cfg.dtype, "align": align.key if align else None,
            "lora": to_dict(self.cfg.lora), "task": task, "n": n, "p": p, "seed": seed, "topology": k.topology,
            "train": to_dict(k.train), "probe_samples": k.probe_samples, "finetune": finetune,
            "lisa": to_dict(self._lisa().config) if finetune == "lisa" else None,
            "lisa_align_samples": self.cfg.align.samples if finetune == "lisa" else None,
            "pools": {p_: self.pool_hash(p_) for p_ in ("attacker_harmful", f"{task}_train")
                      + (("alignment",) if finetune == "lisa" else ())},
        })

    def attack(self, align: StageResult | None, task: str, n: int, p: float, seed: int,
               finetune: str = "sft", rebuild: bool = False) -> StageResult:
        """Fine-tune on the user's mix (n samples, share p harmful); ``finetune``: 'sft' (the
        attack as users run it) or 'lisa' (the provider's fine-tuning-stage defense)."""
        key = self.attack_key(align, finetune, task, n, p, seed)
        with self._lock("attack", key, every_process=True):  # every process decides under it
            return (self._reusable("attack", key, rebuild)
                    or self._attack(key, self.with_adapter(align), task, n, p, seed, finetune))

    def _attack(self, key: str, align: StageResult | None, task: str, n: int, p: float, seed: int,
                finetune: str) -> StageResult:
        from dataclasses import replace

        from booster.data import mix
        from booster.methods import SFT, SFTConfig
        from booster.models.adapters import apply_adapter, attach_lora, load_adapter
        from booster.training import encode_records

        k = self.cfg.attack
        work = self.cache / "attack" / f"{key}.work"
        record = {"stage": "attack", "key": key, "align": align.key if align else None, "task": task, "n": n,
                  "p": p, "seed": seed, "topology": k.topology, "finetune": finetune,
                  "bf16_kernels": self.bf16_kernels}
        with measure(record):
            base, tok = self.base_model()
            if align is None:
                model = attach_lora(base, self.cfg.lora, seed=seed)
            elif k.topology == "continue":
                model = load_adapter(base, align.adapter, trainable=True)
                for prm in model.parameters():
                    if prm.requires_grad:
                        prm.data = prm.data.float()
            else:
                model = attach_lora(apply_adapter(base, align.adapter), self.cfg.lora, seed=seed)
            user = mix(self.data_dir, task, n, p, seed)
            max_len = k.train.max_length
            harmful_used = {r["messages"][0]["content"] for r in user if r["harmful"]}
            unseen = [r for r in self.pool("attacker_harmful") if r["messages"][0]["content"] not in harmful_used]
            unseen = random.Random(f"{seed}:probe").sample(unseen, min(k.probe_samples, len(unseen)))
            probes = {"harmful_test_loss": encode_records(tok, unseen, max_len)}
            seen = [r for r in user if r["harmful"]][: k.probe_samples]
            if seen:
                probes["harmful_train_loss"] = encode_records(tok, seen, max_len)
            record.update(n_harmful=sum(r["harmful"] for r in user))
            data = {"user": encode_records(tok, user, max_len)}
            if finetune == "lisa":
                data["align"] = encode_records(tok, self.sample("alignment", self.cfg.align.samples, "align"), max_len)
                runner = self._lisa()
            else:
                runner = SFT(SFTConfig(stream="user"))
            history = self._train(model, runner, data, replace(k.train, seed=seed), work, tok, probes=probes)
        return self._finish_trained("attack", key, work, record, model, history)

    # -- evaluation ------------------------------------------------------------------------
    def eval_tasks(self, task: str):
        return eval_tasks(self.cfg, task)

    def _gen_key(self, align: StageResult | None, attack: StageResult | None, task, limit) -> str:
        """Answers depend on the model state, the prompts and the decoding, not on the judge."""
        e = self.cfg.eval
        return digest({"stage": "generate", "model": self.model_key, "dtype": self.cfg.dtype,
                       "align": align.key if align else None, "attack": attack.key if attack else None,
                       "topology": self.cfg.attack.topology if attack else None,
                       "task": task.name, "limit": limit, "pool": self.pool_hash(task.pool),
                       "max_new_tokens": task.max_new_tokens or e.max_new_tokens, "batch_size": e.batch_size,
                       "eval_dtype": e.dtype})

    def judge_identity(self) -> dict | None:
        judge = self.judge()
        return judge.identity() if judge is not None else None

    def _eval_key(self, gen_key: str, task) -> str:
        judge = key_identity(self.judge_identity() or {"name": "none"}) if task.metric == "harmful_score" else None
        return digest({"stage": "eval", "generate": gen_key, "task": task.name, "judge": judge})

    def evaluate(self, align: StageResult | None, attack: StageResult | None, task: str) -> dict[str, StageResult]:
        """HS, FA and over-refusal of one model state, each task cached on its own (the HS of an
        aligned model is computed once, whatever user task follows).

        Two cached steps per task: the answers (``generate``: expensive, judge-independent) and
        their scores (``eval``: cheap), so changing the judge rescores without regenerating."""
        from booster.evaluation.harness import load_prompts

        results, todo = {}, []  # results keep the task order, whether cached or computed now
        for t, limit in self.eval_tasks(task):
            gen_key = self._gen_key(align, attack, t, limit)
            key = self._eval_key(gen_key, t)
            cached = self._cached("eval", key)
            results[t.name] = self._load("eval", key) if cached else None
            if not cached:
                todo.append((t, limit, gen_key, key))
        if not todo:
            return results
        if any(not self._cached("generate", gen_key) for _, _, gen_key, _ in todo):
            align, attack = self.with_adapter(align), self.with_adapter(attack)  # on every process
        if not self.state.is_main_process:  # generation runs on the main process only
            self.state.wait_for_everyone()
            results |= {t.name: self._load("eval", key) for t, _, _, key in todo}
            return results
        model = None  # (model, tokenizer), loaded when the first answers must be generated
        for t, limit, gen_key, key in todo:
            records = load_prompts(self.data_dir, t, limit)
            if not self._cached("generate", gen_key):
                with self._lock("generate", gen_key):
                    if not self._cached("generate", gen_key):
                        model = model or self._eval_model(align, attack)
                        self._generate(t, records, gen_key, model, align, attack)
            generated = self._load("generate", gen_key)
            with self._lock("eval", key):
                results[t.name] = self._reusable("eval", key) or self._score(t, records, generated, key, align, attack)
        self.state.wait_for_everyone()
        return results

    def _generate(self, t, records: list[dict], gen_key: str, model, align: StageResult | None,
                  attack: StageResult | None) -> StageResult:
        """The answers of one model state to one task's prompts (main process, under the lock)."""
        from booster.evaluation.harness import prompt_of
        from booster.models.generation import generate

        e = self.cfg.eval
        work = self.cache / "generate" / f"{gen_key}.work"
        shutil.rmtree(work, ignore_errors=True)  # generation is redone whole, not resumed
        work.mkdir(parents=True)
        record = {"stage": "generate", "key": gen_key, "task": t.name, "align": align.key if align else None,
                  "attack": attack.key if attack else None, "bf16_kernels": self.bf16_kernels}
        with measure(record):
            gens = generate(*model, [prompt_of(r) for r in records],
                            max_new_tokens=t.max_new_tokens or e.max_new_tokens,
                            batch_size=e.batch_size, desc=t.name, progress=self.progress)
        record["generated_tokens"] = sum(g.new_tokens for g in gens)
        io.write_jsonl(work / "answers.jsonl", [{"answer": g.text, "new_tokens": g.new_tokens} for g in gens])
        return self._finish("generate", gen_key, work, record)

    def _score(self, t, records: list[dict], generated: StageResult, key: str, align: StageResult | None,
               attack: StageResult | None) -> StageResult:
        """Score cached answers with the task's rule or the judge (main process, under the lock)."""
        from booster.evaluation.harness import score_task

        e = self.cfg.eval
        answers = [row["answer"] for row in io.read_jsonl(generated.path / "answers.jsonl")]
        work = self.cache / "eval" / f"{key}.work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        record = {"stage": "eval", "key": key, "generate": generated.key, "task": t.name,
                  "align": align.key if align else None, "attack": attack.key if attack else None,
                  "judge": self.judge_identity() if t.metric == "harmful_score" else None}
        with measure(record):
            metrics, rows = score_task(t, records, answers, self.judge() if t.metric == "harmful_score" else None)
        metrics.update(max_new_tokens=t.max_new_tokens or e.max_new_tokens,
                       generation_seconds=generated.record["seconds"],
                       generated_tokens=generated.record["generated_tokens"])
        record["metrics"] = metrics
        io.write_jsonl(work / "samples.jsonl", rows)
        return self._finish("eval", key, work, record)

    def _eval_model(self, align: StageResult | None, attack: StageResult | None):
        """The model state to generate with: base, + alignment adapter, + attack adapter."""
        from booster.models.adapters import apply_adapter

        model, tok = self.base_model(self.cfg.eval.dtype)
        continued = attack is not None and align is not None and self.cfg.attack.topology == "continue"
        if align is not None and not continued:
            model = apply_adapter(model, align.adapter)
        if attack is not None:
            model = apply_adapter(model, attack.adapter)
        return model, tok
