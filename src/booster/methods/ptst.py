"""PTST, "Pure Tuning, Safe Testing" (Lyu et al., "Keeping LLMs Aligned After Fine-tuning: The
Crucial Role of Prompt Templates", NeurIPS 2024, arXiv:2402.18540, Section 3).

The provider fine-tunes on the user's file with the user's template and no safety prompt (plain
SFT, the records as they are), and at inference puts a safety system prompt in front of every
prompt. The paper's finding is that the mismatch itself protects: a safety prompt seen at test
time but never in fine-tuning keeps more of the alignment than one used in both.

The default prompt (``booster.methods.configs.PTST_SYSTEM_PROMPT``) was written for this toolkit:
one sentence asking the assistant to help and to refuse harmful, illegal or dangerous requests,
saying why. It enters the key of every evaluation's answers and the summary row.

Deviations: the paper's prompts are Llama-2-chat's and GPT-3.5's own system prompts; SmolLM2's chat
template already puts a default system prompt in front of a conversation that has none, so the
fine-tuning here sees that default one (the user's template) and evaluation replaces it with the
safety prompt. The "before attack" evaluation of the aligned model keeps the default template.
"""

from __future__ import annotations

from booster.methods.configs import PTSTConfig  # re-exported: its home is torch-free


def eval_system_prompt(config: PTSTConfig, attack_record: dict) -> str:
    return config.system_prompt
