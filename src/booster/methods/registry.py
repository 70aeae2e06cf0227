"""The table of defenses: one row per defense, the only place the pipeline, the grid, the
benchmarks and the report learn which defenses exist and how to build them.

A row says in which stage the defense acts (``align``: it trains the aligned adapter;
``finetune``: it replaces the user's plain fine-tuning; ``post``: it repairs the fine-tuned
model before evaluation), where its hyperparameters live in the experiment YAML, how to build
it from them, which paper it implements and which data streams it reads:

    align    the provider's alignment data (harmful prompt → safe answer)
    harmful  the provider's harmful data (harmful prompt → harmful answer)
    user     the user's fine-tuning mix

Adding a defense: its own file under ``booster/methods/``, one row below, and its config
section (a field of the stage's section in ``booster/pipeline/config.py``). The test of the
table (``tests/methods/test_registry.py``) checks that every row has its section, and that its
faithfulness test and smoke test exist.

This module imports no torch: ``booster run --check`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Literal

from booster.methods.configs import (BEAConfig, BoosterConfig, LisaConfig, ModFilterConfig, PTSTConfig, RepNoiseConfig,
                                     SafeInstrConfig, SafeLoRAConfig, SAFTConfig, VaccineConfig)

Stage = Literal["align", "finetune", "post"]
Topology = Literal["fresh", "continue"]
TOPOLOGIES: tuple[Topology, ...] = ("fresh", "continue")
# every trainable (align / finetune) row runs through the real training loop here, by name
SMOKE_TEST = "tests/methods/test_methods_smoke.py::test_registered_defense_trains_in_the_loop"
STAGES: tuple[Stage, ...] = ("align", "finetune", "post")


@dataclass(frozen=True)
class Defense:
    name: str
    """The name in ``methods:`` of an experiment config, in summaries and reports."""
    stage: Stage
    config: type | None
    """The hyperparameter dataclass (None: the method has none)."""
    section: str | None
    """Where ``config`` lives in the experiment config, e.g. ``align.booster``."""
    factory: Callable[..., Any]
    """align/finetune: ``factory(config, total_steps) -> Method`` (``booster.methods.base``);
    post: ``factory(config) -> repair(aligned_state, unaligned_state, attack_lora_state) ->
    (adapter tensors, report)`` (see ``booster.pipeline.repair``)."""
    paper: str
    streams: tuple[str, ...] = ()
    """Data streams the defense reads besides the stage's own (align: ``align``; finetune: ``user``)."""
    faithfulness_test: str = ""
    """The test (``path::function``) checking the method's update against an independent
    computation of the paper's equations (an autograd reference, explicit loops)."""
    smoke_test: str = SMOKE_TEST
    """The test running it end to end (default: the loop smoke test parametrized over the table)."""
    reference: bool = False
    """The undefended baseline every defense is compared against (exactly one row)."""
    passes: tuple[tuple[str, int], ...] = ()
    """Forward/backward passes per optimizer step on each stream: the FLOP model of
    ``booster bench step``, which times the rows that declare it (empty: not modelled)."""
    attack_topology: Topology = "fresh"
    """How the method's own paper attacks it (``attack.topology: paper``): ``fresh`` merges the
    alignment adapter and trains a new LoRA; ``continue`` trains the alignment adapter on
    (a single LoRA). A post defense is always attacked ``fresh``: it repairs the attack's own adapter."""
    prepare_data: Callable[..., Any] | None = None
    """finetune: ``prepare_data(config, user_records, view) -> (records, report)``, the user's file
    as the provider transforms it before fine-tuning (filtered, or with its own examples mixed
    in); ``view`` is what the provider may use (``booster.pipeline.attack.DataView``: tokenizer,
    the model before fine-tuning, judges, its pools, the evaluation prompts, the seed). The report
    (counts, leakage, trigger, ...) goes into the attack record and the summary row. The config
    enters the attack key; a config with ``judges() -> specs`` adds those judges' identities.
    None: the file is trained on as it is."""
    eval_system_prompt: Callable[..., Any] | None = None
    """finetune: ``eval_system_prompt(config, attack_record) -> str | None``, the system prompt the
    provider puts in front of every evaluation prompt of the attacked model (a safety prompt, a
    secret trigger). It enters the answers' cache key and the summary row only when there is one.
    None: the chat template's own."""
    trains_as_plain_attack: bool = False
    """finetune: the defense fine-tunes on the user's file exactly as the undefended attack does
    (no data transform, no provider stream) and acts only at evaluation (PTST). Its cells then
    share the plain attack's stage, trained once under the plain attack's key."""
    filters: bool = False
    """finetune: ``prepare_data`` only removes records from the user's file (a data filter);
    ``booster screen`` reports what it would keep of every user file of a grid (leakage, false
    removals) without fine-tuning."""
    check_user_data: Callable[..., Any] | None = None
    """finetune: ``check_user_data(config, user_records)``, raising ``ConfigError`` when the user's
    file makes the configured defense meaningless (e.g. it contains BEA's trigger); run on every
    cell by ``booster run --check`` and before a run trains anything."""


# -- factories (lazy imports: the methods import torch) ----------------------------------------
def _sft(config, total_steps):
    from booster.methods.sft import SFT

    return SFT()


def _booster(config, total_steps):
    from booster.methods.booster import Booster

    return Booster(config)


def _vaccine(config, total_steps):
    from booster.methods.vaccine import Vaccine

    return Vaccine(config)


def _repnoise(config, total_steps):
    from booster.methods.repnoise import RepNoise

    return RepNoise(config)


def _lisa(config, total_steps):
    from booster.methods.lisa import Lisa

    return Lisa(replace(config, total_steps=total_steps))  # its proximal term starts at a share of the run


def _user_sft(config, total_steps):
    """Plain fine-tuning on the user's (transformed) file: the defenses that act on the data."""
    from booster.methods.sft import SFT, SFTConfig

    return SFT(SFTConfig(stream="user"))


def _hook(module: str, name: str) -> Callable[..., Any]:
    """``booster.methods.<module>.<name>``, imported on first call (SAFT's imports torch)."""
    def call(*args):
        from importlib import import_module

        return getattr(import_module(f"booster.methods.{module}"), name)(*args)

    call.__qualname__ = f"{module}.{name}"
    return call


def _safelora(config):
    from functools import partial

    from booster.methods.safelora import repair

    return partial(repair, cfg=config)


DEFENSES: list[Defense] = [
    Defense("sft", "align", None, None, _sft, "supervised fine-tuning on the alignment data (no defense)",
            faithfulness_test="tests/methods/test_sft.py::test_sft_gradient_is_the_token_mean_loss_gradient",
            reference=True, passes=(("align", 1),)),
    Defense("booster", "align", BoosterConfig, "align.booster", _booster,
            "Huang et al., Booster, ICLR 2025, arXiv:2409.01586", streams=("harmful",),
            faithfulness_test="tests/methods/test_booster.py::test_update_matches_formula",
            passes=(("align", 1), ("harmful", 2)),  # ∇f, ∇h at w and at the simulated step
            # the authors attack the alignment LoRA itself: Booster "can only adopt single LoRA
            # implementation… if a second LoRA is used, the simulation simply could not work"
            # (the author, in the reference repository's issue tracker; issue 14)
            attack_topology="continue"),
    Defense("vaccine", "align", VaccineConfig, "align.vaccine", _vaccine,
            "Huang et al., Vaccine, NeurIPS 2024, arXiv:2402.01109",
            faithfulness_test="tests/methods/test_vaccine.py::test_update_matches_formula_and_perturbation_norm_is_rho"),
    Defense("repnoise", "align", RepNoiseConfig, "align.repnoise", _repnoise,
            "Rosati et al., Representation Noising, NeurIPS 2024, arXiv:2405.14577", streams=("harmful",),
            faithfulness_test="tests/methods/test_repnoise.py::test_total_gradient_matches_full_formula"),
    Defense("lisa", "finetune", LisaConfig, "attack.lisa", _lisa,
            "Huang et al., Lisa, NeurIPS 2024, arXiv:2405.18641", streams=("align",),
            faithfulness_test="tests/methods/test_lisa.py::test_total_gradient_is_state_gradient_plus_proximal"),
    Defense("safelora", "post", SafeLoRAConfig, "repair.safelora", _safelora,
            "Hsu et al., Safe LoRA, NeurIPS 2024, arXiv:2405.16833",
            faithfulness_test="tests/methods/test_safelora.py::test_threshold_rule_matches_reference",
            smoke_test="tests/pipeline/test_pipeline.py::test_safelora_runs_in_the_grid_on_the_tiny_model"),
    # Fine-tuning-stage defenses acting on the user's file and the inference prompt (issue 15):
    # plain SFT on the transformed data, from the SFT-aligned model as Lisa.
    Defense("modfilter", "finetune", ModFilterConfig, "attack.modfilter", _user_sft,
            "moderation filtering of the user's data (Huang et al., harmful fine-tuning survey, arXiv:2409.18169)",
            faithfulness_test="tests/methods/test_userdata_defenses.py::test_modfilter_keeps_exactly_the_unflagged_records_in_order",
            prepare_data=_hook("modfilter", "prepare_data"), filters=True),
    Defense("safeinstr", "finetune", SafeInstrConfig, "attack.safeinstr", _user_sft,
            "Bianchi et al., Safety-Tuned LLaMAs, ICLR 2024, arXiv:2309.07875",
            faithfulness_test="tests/methods/test_userdata_defenses.py::test_safeinstr_adds_exactly_k_samples_disjoint_from_evaluation",
            prepare_data=_hook("safeinstr", "prepare_data")),
    Defense("ptst", "finetune", PTSTConfig, "attack.ptst", _user_sft,
            "Lyu et al., Keeping LLMs Aligned After Fine-tuning (PTST), NeurIPS 2024, arXiv:2402.18540",
            faithfulness_test="tests/pipeline/test_userdata_grid.py::test_ptst_trains_without_and_evaluates_with_its_system_prompt",
            eval_system_prompt=_hook("ptst", "eval_system_prompt"), trains_as_plain_attack=True),
    Defense("bea", "finetune", BEAConfig, "attack.bea", _user_sft,
            "Wang et al., Backdoor Enhanced Safety Alignment, NeurIPS 2024, arXiv:2402.14968",
            faithfulness_test="tests/pipeline/test_userdata_grid.py::test_bea_trigger_is_on_its_examples_and_at_evaluation_only",
            prepare_data=_hook("bea", "prepare_data"), eval_system_prompt=_hook("bea", "eval_system_prompt"),
            check_user_data=_hook("bea", "check_user_data")),
    Defense("saft", "finetune", SAFTConfig, "attack.saft", _user_sft,
            "Choi et al., Safety-Aware Fine-Tuning of LLMs, arXiv:2410.10014",
            faithfulness_test="tests/methods/test_userdata_defenses.py::test_saft_scores_match_an_independent_eigendecomposition",
            prepare_data=_hook("saft", "prepare_data"), filters=True),
]

# The fields the plain attack's stage key carried when Lisa was the only fine-tuning-stage
# defense (its config and its alignment sample count, both null). Kept so that the keys of the
# stages already in ledgers stay valid; a fine-tuning-stage defense's key carries its own
# ``{name: config, name_align_samples: ...}`` instead (``booster.pipeline.attack``).
PLAIN_ATTACK_KEY_FIELDS = {"lisa": None, "lisa_align_samples": None}


def split(entry: str) -> tuple[str, str | None]:
    """A ``methods:`` entry is a defense name, optionally with the attack topology it runs
    under: ``sft@continue`` (None: the one ``attack.topology`` gives)."""
    name, _, topology = entry.partition("@")
    return name, (topology if "@" in entry else None)


def attack_topology(entry: str, configured: str) -> Topology:
    """The topology a ``methods:`` entry's attack runs under: its ``@topology``, else
    ``attack.topology``; ``paper``: the one its defense's row declares (``attack_topology``)."""
    name, topology = split(entry)
    topology = topology or configured
    return get(name).attack_topology if topology == "paper" else topology


def names(stage: Stage | None = None) -> list[str]:
    return [d.name for d in DEFENSES if stage is None or d.stage == stage]


def find(name: str) -> Defense | None:
    return next((d for d in DEFENSES if d.name == name), None)


def get(name: str) -> Defense:
    d = find(name)
    if d is None:
        raise KeyError(f"unknown defense {name!r} (choose from {', '.join(names())})")
    return d


def reference() -> Defense:
    """The undefended baseline (SFT): it aligns for the fine-tuning-stage and post defenses too."""
    return next(d for d in DEFENSES if d.reference)


@dataclass(frozen=True)
class Chain:
    """The defense acting in each stage of one compared method (None: no defense there)."""

    align: Defense
    finetune: Defense | None
    post: Defense | None


def chain(name: str) -> Chain:
    """A defense of one stage runs with the reference alignment and the plain attack elsewhere
    (``name``: a ``methods:`` entry, its ``@topology`` aside)."""
    d = get(split(name)[0])
    return Chain(align=d if d.stage == "align" else reference(),
                 finetune=d if d.stage == "finetune" else None, post=d if d.stage == "post" else None)


def config_of(defense: Defense, experiment) -> Any:
    """The defense's hyperparameters from an experiment config (its ``section``)."""
    if defense.section is None:
        return None
    obj = experiment
    for part in defense.section.split("."):
        obj = getattr(obj, part)
    return obj


def stage_configs(experiment) -> dict[str, Any]:
    """Every configured defense's hyperparameters by name (for protocols and benchmarks)."""
    return {d.name: config_of(d, experiment) for d in DEFENSES if d.section is not None}
