"""The methods' hyperparameter dataclasses, without torch.

This module exists so that the CLI's config check (``booster run CONFIG --check``) can build and
validate a config without importing torch; each method module re-exports its config from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from booster.config import option, quote
from booster.errors import ConfigError


@dataclass
class BoosterConfig:
    """Booster hyperparameters (Huang et al., ICLR 2025, arXiv:2409.01586); the method is
    ``booster.methods.booster``."""

    lam: float = option(5.0, "λ, weight of the harmful-loss reduction term (paper/code default: 5)")
    alpha: float = option(0.1, "α, step size of the simulated normalised harmful step (paper/code default: 0.1)")
    align_stream: str = option("align", "data stream of the alignment loss f")
    harmful_stream: str = option("harmful", "data stream of the harmful loss h (provider's harmful data)")

    def validate(self):
        if not self.lam >= 0:
            raise ConfigError(f"lam (λ) must be >= 0, got {self.lam}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha (α) must be > 0, got {self.alpha}")


@dataclass
class LisaConfig:
    """Lisa hyperparameters (Huang et al., "Lisa: Lazy Safety Alignment …", NeurIPS 2024,
    arXiv:2405.18641); the method is ``booster.methods.lisa``."""

    align_steps: int = option(100, "K_align, consecutive steps on alignment data per cycle "
                                    "(authors' script lisa_poison_ratio.sh: align_step=100)")
    user_steps: int = option(900, "K_user, consecutive steps on user data per cycle "
                                  "(authors' script: finetune_step=900)")
    rho: float = option(1.0, "ρ, intensity of the proximal term ρ/2·‖w − w̃‖² "
                             "(authors' script lisa_poison_ratio.sh: RHO=1)")
    proximal_start: float = option(0.1, "fraction of total_steps during which the proximal term is off "
                                        "(authors' trainer: 0.1 of the training steps)")
    total_steps: int | None = option(None, "total optimizer steps of the run (set it to train.steps); "
                                           "required when rho > 0 and proximal_start > 0")
    align_stream: str = option("align", "data stream of the alignment state")
    user_stream: str = option("user", "data stream of the user (fine-tuning) state")

    def validate(self):
        if self.align_steps < 0 or self.user_steps < 0 or self.align_steps + self.user_steps == 0:
            raise ConfigError(f"align_steps and user_steps must be >= 0 and not both 0, "
                              f"got {self.align_steps} and {self.user_steps}")
        if not (self.rho >= 0 and math.isfinite(self.rho)):
            raise ConfigError(f"rho (ρ) must be a finite number >= 0, got {self.rho}")
        if not 0 <= self.proximal_start <= 1:
            raise ConfigError(f"proximal_start must be in [0, 1], got {self.proximal_start}")
        if self.total_steps is not None and self.total_steps < 1:
            raise ConfigError(f"total_steps must be >= 1, got {self.total_steps}")
        if self.align_stream == self.user_stream:
            raise ConfigError(f"align_stream and user_stream must differ, both are '{self.align_stream}'")


@dataclass
class RepNoiseConfig:
    """RepNoise hyperparameters (Rosati et al., NeurIPS 2024, arXiv:2405.14577); the method is
    ``booster.methods.repnoise``."""

    beta: float = option(0.001, "β, weight of the MMD-to-noise term (authors' code default: 0.001)")
    alpha: float = option(1.0, "α, weight of the −log(harmful loss + 1) ascent term (authors' code default: 1)")
    seed: int = option(0, "seed of the Gaussian noise the harmful representations are pushed towards")
    lens_tokens: int | None = option(
        None, "answer tokens per harmful micro-batch in the logit-lens loss H, drawn without replacement "
              "each step (null: all of them, the paper). The lens costs L full-vocabulary LM-head passes: "
              "on SmolLM2 (vocab 49152, hidden 576, 30 layers) about 6x the FLOPs of a forward pass of the whole model")
    align_stream: str = option("align", "data stream of the alignment loss (harmful prompt → safe answer)")
    harmful_stream: str = option("harmful", "data stream of the harmful batch (harmful prompt → harmful answer)")

    def validate(self):
        for key in ("beta", "alpha"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{key} must be a finite number >= 0, got {value}")
        if not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be in [0, 2^31), got {self.seed}")
        if self.lens_tokens is not None and self.lens_tokens < 1:
            raise ConfigError(f"lens_tokens must be >= 1 or null, got {self.lens_tokens}")


@dataclass
class SFTConfig:
    """Plain supervised fine-tuning on one stream; the method is ``booster.methods.sft``."""

    stream: str = option("align", "data stream to train on ('align' in the alignment stage, 'user' in fine-tuning)")


@dataclass
class VaccineConfig:
    """Vaccine hyperparameters (Huang et al., NeurIPS 2024, arXiv:2402.01109); the method is
    ``booster.methods.vaccine``."""

    rho: float = option(2.0, "ρ, norm of the hidden-embedding perturbation over all layers "
                             "(their README's default command uses ρ=2)")
    stream: str = option("align", "data stream of the alignment loss")

    def validate(self):
        if not (self.rho >= 0 and math.isfinite(self.rho)):
            raise ConfigError(f"rho (ρ) must be a finite number >= 0, got {self.rho}")


@dataclass
class SafeLoRAConfig:
    """Safe LoRA hyperparameters (Hsu et al., NeurIPS 2024, arXiv:2405.16833); the method is
    ``booster.methods.safelora``."""

    select: Literal["threshold", "number"] = option(
        "threshold", "which layers are projected: 'threshold' (similarity ≤ τ, the rule of the paper's "
                     "Figure 1) or 'number' (the num_layers of lowest similarity; the default of the authors' "
                     "code as ported to peft)")
    threshold: float = option(0.5, "τ, cosine-similarity threshold of the 'threshold' rule (authors' code: "
                                   "0.5); 1 projects every layer, 0 only layers whose projection is zero")
    num_layers: int = option(10, "k, layers projected by the 'number' rule (authors' code: 10)")
    projection: Literal["approx", "exact"] = option(
        "approx", "'approx': the paper's Ĉ = V Vᵀ / ‖V‖_F (as the authors' code); 'exact': the "
                  "orthogonal projector V V⁺ onto the column space of V (an option of this toolkit)")

    def validate(self):
        if self.select not in ("threshold", "number"):
            raise ConfigError(f"select must be 'threshold' or 'number', got {quote(self.select)}")
        if self.projection not in ("approx", "exact"):
            raise ConfigError(f"projection must be 'approx' or 'exact', got {quote(self.projection)}")
        number = isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
        if not (number and 0 <= self.threshold <= 1):
            raise ConfigError(f"threshold (τ) must be in [0, 1] (the similarity is a cosine in [0, 1]), "
                              f"got {quote(self.threshold)}")
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ConfigError(f"num_layers must be an integer >= 0, got {quote(self.num_layers)}")


# -- fine-tuning-stage defenses that act on the user's data and the inference prompt (issue 15) --

def _share(name: str, value) -> None:
    """A share/ratio: a number in [0, 1]."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and 0 <= value <= 1):
        raise ConfigError(f"{name} must be a number in [0, 1], got {quote(value)}")


def _count(name: str, value, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {quote(value)}")


@dataclass
class ModFilterConfig:
    """Moderation filtering of the user's file before fine-tuning (the survey's "data filtering"
    defense, e.g. a moderation model such as beaver-dam); the method is ``booster.methods.modfilter``."""

    judge: str = option("answer-judge", "moderation judge scoring each (prompt, answer) of the user's file: "
                                        "'answer-judge' (the committed default judge), 'minilm-judge', a judge "
                                        "folder or a listed hub id such as PKU-Alignment/beaver-dam-7b "
                                        "(any spec of booster.evaluation.judges.load_judge)")
    threshold: float | None = option(None, "flag a sample when its harmful probability is >= this "
                                           "(null: the judge's own calibrated threshold)")

    def validate(self):
        from booster.evaluation.judges.registry import judge_spec_problem  # torch-free

        problem = judge_spec_problem(self.judge)
        if problem:
            raise ConfigError(f"judge: {problem}")
        if self.threshold is not None:
            _share("threshold", self.threshold)

    def judges(self) -> tuple[str, ...]:
        """The judges the defense loads (their identities enter the attack's key)."""
        return (self.judge,)


@dataclass
class SafeInstrConfig:
    """Alignment-data mixing (SafeInstr: Bianchi et al., "Safety-Tuned LLaMAs: Lessons From
    Improving the Safety of Large Language Models that Follow Instructions", ICLR 2024,
    arXiv:2309.07875); the method is ``booster.methods.safeinstr``."""

    ratio: float = option(0.03, "safety samples added per user sample: k = floor(ratio·n + 0.5) provider "
                                "alignment samples for a user file of n (paper: 'adding just 3% safety "
                                "examples', i.e. a few hundred to 20,000 instructions)")
    count: int | None = option(None, "a fixed number k of safety samples instead of the ratio (null: use ratio)")

    def validate(self):
        _share("ratio", self.ratio)
        if self.count is not None:
            _count("count", self.count)


# Written for this toolkit (PTST's paper evaluates with Llama-2-chat's own system prompt and
# variants of it; this text states the same intent in a sentence).
PTST_SYSTEM_PROMPT = ("You are a helpful and safe assistant. Answer the user's requests helpfully, "
                      "but refuse any request that could cause harm to people, break the law, or help "
                      "someone do something dangerous, and say briefly why you refuse.")


@dataclass
class PTSTConfig:
    """Pure Tuning, Safe Testing (Lyu et al., "Keeping LLMs Aligned After Fine-tuning: The Crucial
    Role of Prompt Templates", NeurIPS 2024, arXiv:2402.18540); the method is ``booster.methods.ptst``."""

    system_prompt: str = option(PTST_SYSTEM_PROMPT, "safety system prompt of every evaluation prompt "
                                "(fine-tuning uses the user's template without it); default: written for this "
                                "toolkit, see booster.methods.ptst")

    def validate(self):
        if not self.system_prompt.strip():
            raise ConfigError("system_prompt must not be empty")


@dataclass
class BEAConfig:
    """Backdoor Enhanced Safety Alignment (Wang et al., "Mitigating Fine-tuning based Jailbreak
    Attack with Backdoor Enhanced Safety Alignment", NeurIPS 2024, arXiv:2402.14968); the method
    is ``booster.methods.bea``."""

    examples: int = option(11, "provider safety examples with the secret trigger as their system prompt, "
                               "mixed into the user's file (paper: 11)")
    trigger_words: int = option(10, "length of the secret trigger in random pseudo-words (paper: random "
                                    "tokens; 10 words, about 30 SmolLM2 tokens, leave room for the answer "
                                    "under max_length 128)")
    trigger_seed: int = option(0, "seed of the random trigger (the trigger is recorded with the attack)")
    trigger: str | None = option(None, "a fixed trigger instead of a random one (null: drawn from trigger_seed)")

    def validate(self):
        _count("examples", self.examples, 1)
        _count("trigger_words", self.trigger_words, 1)
        _count("trigger_seed", self.trigger_seed)
        if self.trigger is not None and not self.trigger.strip():
            raise ConfigError("trigger must not be empty (null draws a random one)")


@dataclass
class SAFTConfig:
    """Safety-Aware Fine-Tuning (Choi et al., "Safety-Aware Fine-Tuning of Large Language
    Models", arXiv:2410.10014, 2024); the method is ``booster.methods.saft``."""

    layer: int | None = option(None, "hidden-state layer whose mean over the answer tokens embeds a sample "
                                     "(0: the embeddings; null: the middle layer, num_layers // 2)")
    select: Literal["share", "quantile"] = option(
        "share", "'share': drop the `share` of samples with the highest score; 'quantile': drop the samples "
                 "whose score exceeds the `quantile` of the scores")
    share: float = option(0.1, "share of samples dropped under select: share (toolkit default: the "
                               "default harmful share p = 0.1)")
    quantile: float = option(0.9, "score quantile above which samples are dropped under select: quantile")

    def validate(self):
        if self.select not in ("share", "quantile"):
            raise ConfigError(f"select must be 'share' or 'quantile', got {quote(self.select)}")
        _share("share", self.share)
        _share("quantile", self.quantile)
        if self.layer is not None:
            _count("layer", self.layer)
