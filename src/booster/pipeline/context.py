"""What every stage recipe of one experiment shares: the config, the cache, the data, the base
model, the judge and the device."""

from __future__ import annotations

import random
from pathlib import Path

from booster.errors import BoosterError
from booster.pipeline.cache import Cache, StageResult, key_identity
from booster.pipeline.config import ExperimentConfig


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


class Context:
    """One experiment's shared state. Under `accelerate launch` / `torchrun` every process
    builds one: all of them train (the loop sums gradients over processes), the main one writes
    the cache and evaluates."""

    def __init__(self, cfg: ExperimentConfig, *, progress: bool = True, judge=None):
        import torch
        from accelerate import PartialState

        from booster.data import load_manifest
        from booster.hardware import asks_bf16, bf16_kernels, bf16_native
        from booster.models import resolve_model

        self.progress = progress
        self.data_dir = Path(cfg.data.dir)
        self.manifest = load_manifest(self.data_dir)
        self.model_identity = resolve_model(cfg.model).identity()  # recorded in the protocol
        self.model_key = key_identity(self.model_identity)  # hashed into stage keys
        self.state = PartialState(cpu=not torch.cuda.is_available())
        self.device = self.state.device
        # bf16_where_native: the settings that run here are the ones keyed and recorded
        self.cfg = cfg = cfg.for_device(bf16_native(self.device))
        self.cache = Cache(Path(cfg.cache), self.state)
        self._judge = judge  # None: load cfg.eval.judge on first use
        self._judges: dict = {}  # other judges by spec (judge_for)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # How bf16 matrix products run here (None: the config computes in float32 throughout);
        # recorded in every stage, since it changes the rounding, not the experiment.
        self.bf16_kernels = (bf16_kernels(self.device, cfg.bf16_emulation)
                             if asks_bf16(cfg.dtype_settings()) else None)

    # -- data ------------------------------------------------------------------------------
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

    # -- models ----------------------------------------------------------------------------
    def base_model(self, dtype: str | None = None):
        from booster.models import load_model

        return load_model(self.cfg.model, dtype=dtype or self.cfg.dtype, device=self.device)

    def judge(self):
        """The judge of the harmful score, or None when ``eval.judge`` is 'none'."""
        if self._judge is None and self.cfg.eval.judge != "none":
            from booster.evaluation.judges import load_judge

            self._judge = load_judge(self.cfg.eval.judge, device=self.device)
        return self._judge

    def judge_identity(self) -> dict | None:
        judge = self.judge()
        return judge.identity() if judge is not None else None

    def judge_for(self, spec: str):
        """A judge by its ``load_judge`` spec, loaded once (the evaluation's own for its spec):
        what a fine-tuning-stage defense filters with."""
        if spec == self.cfg.eval.judge and self.judge() is not None:
            return self.judge()
        if spec not in self._judges:
            from booster.evaluation.judges import load_judge

            self._judges[spec] = load_judge(spec, device=self.device)
        return self._judges[spec]

    def train(self, model, method, data: dict, train_cfg, work: Path, tokenizer, probes=None) -> list[dict]:
        from booster.training import train

        return train(model, method, data, train_cfg, pad_id=tokenizer.pad_token_id, out_dir=work,
                     probes=probes, progress=self.progress)

    # -- the provider's data streams -------------------------------------------------------
    def provider_stream(self, stream: str) -> list[dict]:
        """The seeded sample of the provider's data behind a defense's stream (``align``:
        alignment examples; ``harmful``: the provider's harmful examples)."""
        a = self.cfg.align
        pool, n = PROVIDER_STREAMS[stream]
        return self.sample(pool, getattr(a, n), stream)

    def finish_trained(self, kind: str, key: str, work: Path, record: dict, model, history) -> StageResult:
        """Save the trained adapter and close the stage (main process), then sync everyone."""
        from booster import io
        from booster.models.adapters import save_adapter

        if self.state.is_main_process:
            save_adapter(model, work / "adapter")
            io.write_json(work / "history.json", history)
            self.cache.finish(kind, key, work, record)
        self.state.wait_for_everyone()
        return self.cache.load(kind, key)


# A provider data stream → (its pool, the align-section field with its sample count). The
# stream name is also the salt of the seeded sample, so each stream draws as it always has.
PROVIDER_STREAMS = {"align": ("alignment", "samples"), "harmful": ("provider_harmful", "harmful_samples")}
