"""The experiment config: one YAML file describes align → attack → evaluate over a grid.

    booster run configs/cpu-smollm2.yaml attack.ps=[0.1] align.train.steps=50

Every section is a dataclass whose fields document their meaning and paper default; unknown
keys and invalid values are errors before any training starts (see ``booster.config``).
``model`` and ``methods`` have no default (a config names what it trains), and the default
run folder is ``work/runs/{name}``: only a config that says ``out: results/{name}`` writes
into the repository's committed ``results/``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from typing import Literal

from booster.config import option, quote
from booster.data.attacks import ATTACKS, DEFAULT as DEFAULT_RECIPE
from booster.errors import ConfigError
from booster.methods import registry
from booster.methods.configs import (BEAConfig, BoosterConfig, LisaConfig, ModFilterConfig, PTSTConfig, RepNoiseConfig,
                                     SafeInstrConfig, SafeLoRAConfig, SAFTConfig, VaccineConfig)
from booster.models.adapters import LoraSettings
from booster.tasks import TASKS as ALL_TASKS, USER_TASKS
from booster.training.config import TrainConfig

# Tasks scored on every model state (the summary's HS and over-refusal, with their validation twins).
ALWAYS_EVALUATED = ("hs", "hs_val", "over_refusal", "over_refusal_val")


@dataclass
class DataSection:
    dir: str = option("work/data", "prepared data folder; prepared from `source` when it has no manifest")
    source: str | None = option(None, "raw data folder or 'hub' (default: ../shared/data when present)")
    seed: int = option(0, "seed of the data preparation splits")


@dataclass
class AlignSection:
    samples: int = option(1000, "alignment examples (harmful prompt → safe answer), a seeded sample of the pool")
    harmful_samples: int = option(1000, "provider harmful examples for methods that read them: "
                                              + ", ".join(d.name for d in registry.DEFENSES if "harmful" in d.streams))
    train: TrainConfig = option(factory=lambda: TrainConfig(steps=100, lr=1e-4), help="alignment training "
                                "(train.probe_every > 0 turns the alignment diagnostics on)")
    probe_samples: int = option(64, "held-out provider harmful examples (none in the harmful stream) on which "
                                    "the diagnostics measure h(w) and its reduction after one normalised step")
    probe_alpha: float | None = option(None, "size of that simulated step (default: align.booster.alpha, so "
                                             "every method is measured on the quantity Booster minimises)")
    booster: BoosterConfig = option(factory=BoosterConfig, help="Booster hyperparameters")
    vaccine: VaccineConfig = option(factory=VaccineConfig, help="Vaccine hyperparameters")
    repnoise: RepNoiseConfig = option(factory=RepNoiseConfig, help="RepNoise hyperparameters")

    def validate(self):
        if self.samples < 1 or self.harmful_samples < 1:
            raise ConfigError("samples and harmful_samples must be >= 1")
        if self.probe_samples < 1:
            raise ConfigError(f"probe_samples must be >= 1, got {self.probe_samples}")
        if self.probe_alpha is not None and not self.probe_alpha > 0:
            raise ConfigError(f"probe_alpha must be > 0, got {self.probe_alpha}")

    def diagnostic_alpha(self) -> float:
        return self.probe_alpha if self.probe_alpha is not None else self.booster.alpha


_RECIPE_HELP = ("attack recipe of the user's data (booster.data.attacks): " + ", ".join(ATTACKS)
                + "; ps apply to task_mix, the others fix p (pure_harmful 1, benign and identity_shift 0)")


def _check_recipe(where: str, recipe: str | None) -> None:
    if recipe is not None and recipe not in ATTACKS:
        raise ConfigError(f"{where}recipe: unknown attack recipe {quote(recipe)} (choose from {', '.join(ATTACKS)})")


def _check_cells(where: str, tasks, ns, ps, seeds) -> None:
    if tasks is not None:
        unknown = [t for t in tasks if t not in USER_TASKS]
        if unknown:
            raise ConfigError(f"{where}tasks: unknown task {quote(unknown[0])} (choose from {', '.join(USER_TASKS)})")
    bad_n = [n for n in ns or () if n < 1]
    if bad_n:
        raise ConfigError(f"{where}ns: n must be >= 1, got {bad_n[0]}")
    bad = [p for p in ps or () if not 0 <= p <= 1]
    if bad:
        raise ConfigError(f"{where}ps: p must be in [0, 1], got {bad[0]}")
    for name, values in (("tasks", tasks), ("ns", ns), ("ps", ps), ("seeds", seeds)):
        if values is not None and not values:
            raise ConfigError(f"{where}{name} must not be empty")


@dataclass
class ExtraRuns:
    """A sub-grid of attacked runs added to the main product, e.g. more seeds at one p, or other
    tasks for two methods. A key left out (null) takes the main grid's value."""

    methods: list[str] | None = option(None, "defenses (a subset of the config's methods)")
    recipe: str | None = option(None, _RECIPE_HELP)
    tasks: list[str] | None = option(None, "the user's tasks")
    ns: list[int] | None = option(None, "user fine-tuning set sizes")
    ps: list[float] | None = option(None, "harmful shares")
    seeds: list[int] | None = option(None, "seeds")

    def validate(self):
        _check_recipe("attack.extra.", self.recipe)
        _check_cells("attack.extra.", self.tasks, self.ns, self.ps, self.seeds)
        fixed = ATTACKS[self.recipe].p if self.recipe else None
        if fixed is not None and self.ps is not None and any(p != fixed for p in self.ps):
            raise ConfigError(f"attack.extra.ps: recipe {self.recipe} fixes p={fixed:g} (leave ps out)")


@dataclass
class AttackSection:
    recipe: str = option(DEFAULT_RECIPE, _RECIPE_HELP)
    tasks: list[str] = option(factory=lambda: ["sst2"], help=f"the user's benign tasks: {', '.join(USER_TASKS)}")
    ns: list[int] = option(factory=lambda: [1000], help="user fine-tuning set sizes n (paper default: 1000)")
    ps: list[float] = option(factory=lambda: [0.1], help="harmful shares p to run (paper default: 0.1)")
    seeds: list[int] = option(factory=lambda: [0], help="seeds of the user data mix and attack training")
    topology: Literal["paper", "fresh", "continue"] = option(
        "paper", "paper: each method as its own paper attacks it (its registry row's attack_topology: "
                 "Booster continue, the others fresh); fresh: merge the alignment adapter, train a new "
                 "LoRA (service setting); continue: keep training the alignment adapter (single LoRA). "
                 "A methods entry 'NAME@fresh' / 'NAME@continue' sets it for that entry")
    train: TrainConfig = option(factory=lambda: TrainConfig(steps=100, lr=1e-4, probe_every=10), help="attack training")
    probe_samples: int = option(32, "harmful examples in each loss probe (harmful training / testing loss)")
    lisa: LisaConfig = option(factory=lambda: LisaConfig(total_steps=1), help="Lisa hyperparameters "
                              "(total_steps is set to train.steps by the pipeline)")
    modfilter: ModFilterConfig = option(factory=ModFilterConfig, help="moderation filter of the user's data")
    safeinstr: SafeInstrConfig = option(factory=SafeInstrConfig, help="SafeInstr alignment-data mixing")
    ptst: PTSTConfig = option(factory=PTSTConfig, help="PTST: no safety prompt in fine-tuning, one at evaluation")
    bea: BEAConfig = option(factory=BEAConfig, help="BEA: safety examples with a secret trigger, the trigger at evaluation")
    saft: SAFTConfig = option(factory=SAFTConfig, help="SAFT: drop outliers along the data's top singular direction")
    extra: list[ExtraRuns] = option(factory=list, help="sub-grids run besides methods × tasks × ns × ps × seeds, "
                                    "e.g. [{ps: [0.1], seeds: [1, 2]}, {methods: [sft, booster], tasks: [gsm8k], ps: [0.1]}]")

    def validate(self):
        if not self.ps or not self.seeds or not self.ns or not self.tasks:
            raise ConfigError("tasks, ns, ps and seeds must not be empty")
        _check_recipe("attack.", self.recipe)
        _check_cells("", self.tasks, self.ns, self.ps, self.seeds)


@dataclass
class EvalSection:
    hs_prompts: int = option(500, "harmful evaluation prompts (paper: 1000; the eval half has 731)")
    fa_samples: int | None = option(None, "fine-tune accuracy test samples (null: the whole test set)")
    over_refusal_prompts: int = option(200, "harmless instructions for the over-refusal rate")
    max_new_tokens: int = option(128, "new tokens per harmful-prompt answer (paper: 512)")
    batch_size: int = option(32, "generation batch size")
    dtype: Literal["float32", "bfloat16"] = option(
        "float32", "model dtype for generation; float32 makes answers independent of how prompts are batched "
                   "(in bfloat16, padding changes rounding and can change greedy answers)")
    judge: str = option("answer-judge", "moderation judge ('answer-judge': the committed default, docs/judging.md; 'minilm-judge': the first, for comparison; a folder, or an HF id); 'none' "
                                  "generates and caches the answers without scoring HS (rerun with a judge to score "
                                  "them: the answers are reused)")
    prompts: Literal["eval", "validation"] = option(
        "eval", "'eval': the reported numbers (eval_harmful_prompts, benign_instructions); 'validation': "
                "for choosing hyperparameters (validation_prompts, benign_validation)")
    fa_samples_by_task: dict[str, int] = option(
        factory=dict, help="per-task overrides of fa_samples, e.g. {gsm8k: 200} (its 256-token answers cost "
                           "about 30x an SST-2 answer)")
    extra_tasks: list[str] = option(
        factory=list, help="tasks scored on every model state besides HS, the user task's FA and over-refusal, "
                           "any task of booster.tasks, e.g. [advbench] (prompts: eval.extra_prompts); the summary gets "
                           "hs_<task> (harmful prompts), fa_<task> or over_refusal_<task> per row")
    extra_prompts: int | None = option(None, "prompts of each extra task, the first ones of its pool "
                                             "(null: the task's declared default, e.g. all 520 of advbench)")

    def validate(self):
        unknown = [t for t in self.fa_samples_by_task if t not in USER_TASKS]
        if unknown:
            raise ConfigError(f"eval.fa_samples_by_task: unknown task {quote(unknown[0])} "
                              f"(choose from {', '.join(USER_TASKS)})")
        if self.extra_prompts is not None and self.extra_prompts < 1:
            raise ConfigError(f"eval.extra_prompts must be >= 1, got {self.extra_prompts}")
        extra = [t for t in ALL_TASKS if t not in ALWAYS_EVALUATED]
        unknown = [t for t in self.extra_tasks if t not in extra]
        if unknown:
            raise ConfigError(f"eval.extra_tasks: unknown task {quote(unknown[0])} (choose from {', '.join(extra)})")
        bad = {t: n for t, n in self.fa_samples_by_task.items() if n < 1}
        if bad:
            raise ConfigError(f"eval.fa_samples_by_task: sample counts must be >= 1, got {quote(bad)}")


@dataclass
class RepairSection:
    """Post-fine-tuning defenses: each repairs the attack's adapter before evaluation."""

    safelora: SafeLoRAConfig = option(factory=SafeLoRAConfig, help="Safe LoRA hyperparameters")


# keyword-only: `model` and `methods` are required (no default) but keep their place after `name`
@dataclass(kw_only=True)
class ExperimentConfig:
    name: str = option("experiment", "name of the run folder (a folder name: no '/')")
    model: str = option(help="base model: short name (e.g. smollm2-135m-instruct), local folder or hub id")
    methods: list[str] = option(help=f"defenses to compare: {', '.join(registry.names())} "
                                     f"({registry.reference().name} is the undefended baseline)")
    dtype: Literal["float32", "bfloat16"] = option("bfloat16", "dtype of the frozen base weights (adapters train in float32)")
    threads: int | None = option(None, "torch CPU threads (null: torch's default)")
    bf16_emulation: bool = option(
        True, "where the device has no native bfloat16 (a CPU with AVX2 only), run bf16 matrix products as "
        "float32 products of the same bf16 values (same rounding points, tens of times faster than "
        "PyTorch's generic bf16 kernel); false keeps PyTorch's kernel. Recorded per stage, not hashed")
    bf16_where_native: bool = option(
        False, "true: the bf16 settings (dtype, align/attack mixed_precision, eval.dtype) hold only where the "
        "device multiplies bf16 natively; elsewhere (a CPU with AVX2 only) everything runs in plain float32, "
        "the fastest arithmetic there. Stages are keyed and recorded with the settings that ran")
    lora: LoraSettings = option(factory=LoraSettings, help="LoRA topology of alignment and attack adapters")
    data: DataSection = option(factory=DataSection, help="prepared data")
    align: AlignSection = option(factory=AlignSection, help="alignment stage")
    attack: AttackSection = option(factory=AttackSection, help="harmful fine-tuning attack (user fine-tuning)")
    repair: RepairSection = option(factory=RepairSection, help="post-fine-tuning stage (repair of the attack adapter)")
    eval: EvalSection = option(factory=EvalSection, help="evaluation after alignment and after the attack")
    unaligned: bool = option(True, "also evaluate the unaligned base model (reference row)")
    out: str = option("work/runs/{name}", "run folder with summary, report and plots ({name} is replaced); "
                                           "committed results use results/{name}")
    cache: str = option("work/cache", "stage cache (aligned adapters, attacks, evaluations), shared by runs")

    def dtype_settings(self) -> dict[str, str]:
        """The keys that choose a dtype, with their values (see booster.hardware)."""
        return {"dtype": self.dtype, "align.train.mixed_precision": self.align.train.mixed_precision,
                "attack.train.mixed_precision": self.attack.train.mixed_precision, "eval.dtype": self.eval.dtype}

    def for_device(self, native_bf16: bool) -> "ExperimentConfig":
        """The config as it runs on a device: with ``bf16_where_native`` and no native bf16, every
        bf16 setting becomes float32 (a copy; ``self`` is unchanged)."""
        if not self.bf16_where_native or native_bf16 or not any(v in ("bfloat16", "bf16") for v in self.dtype_settings().values()):
            return self
        return replace(self, dtype="float32",
                       align=replace(self.align, train=replace(self.align.train, mixed_precision="no")),
                       attack=replace(self.attack, train=replace(self.attack.train, mixed_precision="no")),
                       eval=replace(self.eval, dtype="float32"))

    def run_dir(self) -> str:
        """``out`` with ``{name}`` replaced."""
        return self.out.format(name=self.name)

    def validate(self):
        if not self.name.strip() or self.name.strip(".") == "" or any(c in self.name for c in "/\\"):
            raise ConfigError(f"name: must be a folder name (no '/'), got {quote(self.name)}")
        if not self.model.strip():
            raise ConfigError("model must not be empty")
        try:
            fields = [f[1:] for f in string.Formatter().parse(self.out) if f[1] is not None]
        except ValueError:  # a lone brace
            fields = None
        # str.format would also take {0}, {name.attr} or {name:>99999999}: allow {name} only
        if fields is None or any(f != ("name", "", None) for f in fields):
            raise ConfigError(f"out: only {{name}} may appear in braces, got {quote(self.out)}")
        for m in self.methods:
            name, topology = registry.split(m)
            if registry.find(name) is None:
                raise ConfigError(f"methods: unknown method {quote(m)} (choose from {', '.join(registry.names())})")
            if topology is not None and topology not in registry.TOPOLOGIES:
                raise ConfigError(f"methods: {quote(m)}: the attack topology after '@' must be "
                                  f"{' or '.join(registry.TOPOLOGIES)}")
        if not self.methods:
            raise ConfigError("methods must name at least one method")
        post = [m for m in self.methods if registry.chain(m).post is not None
                and registry.attack_topology(m, self.attack.topology) == "continue"]
        if post:
            raise ConfigError(f"methods: {quote(post[0])} repairs the attack's own adapter, which needs "
                              "the fresh attack topology (attack.topology: paper or fresh, no '@continue'; "
                              "continue trains the alignment adapter on)")
        for x in self.attack.extra:
            stray = [m for m in x.methods or () if m not in self.methods]
            if stray:
                raise ConfigError(f"attack.extra.methods: {quote(stray[0])} is not in methods {self.methods}")
