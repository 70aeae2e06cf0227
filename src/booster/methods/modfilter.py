"""Moderation filtering of the user's file (the survey's data-filtering defense: Huang et al.,
"Harmful Fine-tuning Attacks and Defenses for Large Language Models: A Survey",
arXiv:2409.18169, which reports that the beaver-dam moderation model lets 7.71 % of harmful
samples through and wrongly removes 3.64 % of benign ones).

Before fine-tuning, the provider scores every (prompt, answer) of the user's file with a
moderation judge and drops the flagged ones (probability >= the threshold); the rest, in their
order, is fine-tuned on with plain SFT. Each run records its leakage (harmful samples kept) and
false removals (benign samples dropped) against the mix's ground truth, beside the survey's
beaver-dam figures.

Deviations: the default judge is this toolkit's committed CPU judge (``answer-judge``), not
beaver-dam-7b (a 7B model, loadable by its hub id on a GPU). A file the judge flags whole leaves
nothing to fine-tune on: the stage then trains no step and the served model is the aligned one.
"""

from __future__ import annotations

from booster.methods.configs import ModFilterConfig  # re-exported: its home is torch-free
from booster.methods.userdata import answer_text, filter_report, prompt_text

# The survey's measurement of beaver-dam as a filter (its table of data-filtering results), in percent.
BEAVER_DAM_SURVEY = {"leakage_pct": 7.71, "false_removal_pct": 3.64,
                     "source": "Huang et al., harmful fine-tuning survey, arXiv:2409.18169 (beaver-dam-7b as a filter)"}


def flags(config: ModFilterConfig, judge, records: list[dict]) -> tuple[list[bool], float]:
    """(flagged, threshold): the judge's verdict on each record's (prompt, answer)."""
    scores = judge.score([(prompt_text(r), answer_text(r)) for r in records])
    threshold = judge.threshold if config.threshold is None else config.threshold
    return [s >= threshold for s in scores], threshold


def prepare_data(config: ModFilterConfig, records: list[dict], view) -> tuple[list[dict], dict]:
    """The unflagged records, in order, and the filter's report."""
    judge = view.judge(config.judge)
    flagged, threshold = flags(config, judge, records)
    keep = [not f for f in flagged]
    identity = judge.identity()
    report = {"filter": "moderation judge", "judge": identity.get("name"), "judge_sha256": identity.get("sha256"),
              "threshold": threshold, **filter_report(records, keep), "survey_beaver_dam": BEAVER_DAM_SURVEY}
    return [r for r, k in zip(records, keep) if k], report
