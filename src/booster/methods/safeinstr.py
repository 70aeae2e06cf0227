"""SafeInstr: alignment-data mixing (Bianchi et al., "Safety-Tuned LLaMAs: Lessons From
Improving the Safety of Large Language Models that Follow Instructions", ICLR 2024,
arXiv:2309.07875).

The provider adds its own safety examples (harmful prompt → refusal) to the user's file and
fine-tunes on the union with plain SFT. The paper adds a few hundred to 2,000 safety
demonstrations to 20,000 instructions (Section 3) and finds about 3 % enough (its abstract).

Definition recorded with every run: for a user file of n records, k = floor(ratio·n + 0.5)
(ratio read as the decimal written, as the harmful share p of ``booster data mix``), or
``count`` when set; the k examples are a sample of the provider's alignment pool seeded by the
cell's seed, never one whose prompt an evaluation pool holds; the union is shuffled by the seed.

Deviations: the safety examples are this toolkit's alignment pool (BeaverTails prompts with safe
answers), not the paper's own safety set.
"""

from __future__ import annotations

from booster.methods.configs import SafeInstrConfig  # re-exported: its home is torch-free
from booster.methods.userdata import SAFETY_POOL, draw_safety, shuffled

DEFINITION = ("k = count if set, else floor(ratio * n + 0.5) for a user file of n records; k provider "
              f"alignment examples (pool '{SAFETY_POOL}', seeded by the cell's seed, none whose prompt an "
              "evaluation pool holds) are added and the union is shuffled by the seed")


def safety_count(config: SafeInstrConfig, n: int) -> int:
    from booster.data.mix import harmful_count  # the same rounding as the harmful share p

    return config.count if config.count is not None else harmful_count(n, config.ratio)


def prepare_data(config: SafeInstrConfig, records: list[dict], view) -> tuple[list[dict], dict]:
    k = safety_count(config, len(records))
    safety = draw_safety(view, k, "safeinstr")
    report = {"definition": DEFINITION, "n_user": len(records), "safety_added": k,
              "ratio": config.ratio if config.count is None else None}
    return shuffled(records + safety, view.seed, "safeinstr"), report
