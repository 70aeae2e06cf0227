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
