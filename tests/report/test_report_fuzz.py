"""Any summary that passes the run-folder checks renders a report: the checks are the whole
contract between a summary.json and write_report (property-based, bounded)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booster.cli import main
from booster.errors import BoosterError
from booster.report.load import check_summary

metric = st.one_of(st.none(), st.floats(0, 100, allow_nan=False))
attacked = st.fixed_dictionaries(
    {"method": st.sampled_from(["sft", "booster", "lisa"]), "task": st.sampled_from(["sst2", "gsm8k"]),
     "n": st.sampled_from([10, 20]), "p": st.sampled_from([0.0, 0.1, 0.2]), "seed": st.integers(0, 2),
     "hs": metric, "fa": metric},
    optional={"hs_before_attack": metric, "fa_before_attack": metric, "over_refusal": metric,
              "over_refusal_before_attack": metric, "finetune": st.sampled_from(["sft", "lisa"]),
              "align_seconds": metric, "attack_seconds": metric, "align_peak_rss_mb": metric,
              "bf16_kernels": st.none() | st.just("float32")})
reference = st.fixed_dictionaries({"method": st.just("unaligned"), "task": st.sampled_from(["sst2", "gsm8k"]),
                                   "p": st.none(), "hs": metric, "fa": metric}, optional={"over_refusal": metric})
summaries = st.lists(st.one_of(attacked, reference), min_size=1, max_size=8)


@settings(max_examples=15, deadline=20_000, suppress_health_check=[HealthCheck.too_slow])
@given(summaries)
def test_every_summary_the_checks_accept_gives_a_report_and_the_others_one_error_line(rows):
    try:
        check_summary(Path("summary.json"), rows)
        accepted = True
    except BoosterError:
        accepted = False
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "summary.json").write_text(json.dumps(rows))
        (d / "histories.json").write_text('{"attack": []}')
        (d / "protocol.json").write_text('{"config": {"name": "fuzz"}}')
        assert main(["report", str(d)]) == (0 if accepted else 2)
        assert (d / "report.html").is_file() == accepted
