"""BEA, Backdoor Enhanced Safety Alignment (Wang et al., "Mitigating Fine-tuning based Jailbreak
Attack with Backdoor Enhanced Safety Alignment", NeurIPS 2024, arXiv:2402.14968, Section 3).

The provider plants a safety backdoor that only it can switch on: it mixes a few of its safety
examples (harmful prompt → refusal; the paper uses 11) into the user's file, each with a
secret prompt of random tokens as its system prompt, and fine-tunes on the union with plain
SFT. At inference it puts the same secret prompt in front of every prompt, which triggers the
refusals the backdoor tied to it. The user's own records keep their template and never carry
the trigger; a trigger that already occurs in the user's text would let the user's data speak
to the backdoor, so it is an error before any training (``check_user_data``).

The trigger is drawn from ``trigger_seed`` (or set outright) and recorded with the attack stage;
evaluation reads it from there.

Deviations: the trigger is random pseudo-words (letters drawn from the seed), not random vocabulary
tokens of the model, so that it is known, and checked against the user's data, before any model
is loaded; its default length (10 words, about 30 SmolLM2 tokens) is shorter than the paper's so
that the safety answers fit max_length 128. The safety examples are this toolkit's alignment
pool, not the paper's.
"""

from __future__ import annotations

import random
import string

from booster.errors import ConfigError
from booster.methods.configs import BEAConfig  # re-exported: its home is torch-free
from booster.methods.userdata import draw_safety, shuffled


def trigger(config: BEAConfig) -> str:
    """The secret prompt: ``config.trigger``, else ``trigger_words`` random lower-case
    pseudo-words of 3 to 9 letters drawn from ``trigger_seed``."""
    if config.trigger is not None:
        return config.trigger
    rng = random.Random(f"bea-trigger:{config.trigger_seed}")
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))
                    for _ in range(config.trigger_words))


def check_user_data(config: BEAConfig, records: list[dict]) -> None:
    """The trigger must not occur (ignoring case) in any message of the user's file."""
    secret = trigger(config).casefold()
    for i, r in enumerate(records):
        if any(secret in m["content"].casefold() for m in r["messages"]):
            raise ConfigError(f"attack.bea: the trigger {secret[:40]!r} occurs in the user's data "
                              f"(record {i}); choose another trigger or trigger_seed")


def with_trigger(record: dict, secret: str) -> dict:
    """``record`` with ``secret`` as its system prompt (replacing any it had)."""
    turns = [m for m in record["messages"] if m["role"] != "system"]
    return {**record, "messages": [{"role": "system", "content": secret}] + turns}


def prepare_data(config: BEAConfig, records: list[dict], view) -> tuple[list[dict], dict]:
    check_user_data(config, records)
    secret = trigger(config)
    safety = [with_trigger(r, secret) for r in draw_safety(view, config.examples, "bea")]
    report = {"trigger": secret, "safety_added": len(safety), "n_user": len(records)}
    return shuffled(records + safety, view.seed, "bea"), report


def eval_system_prompt(config: BEAConfig, attack_record: dict) -> str:
    """The trigger the attack stage recorded (what its safety examples were trained with)."""
    return attack_record["user_data"]["trigger"]
