"""The report's tables from summary rows: the paper's layout, seeds as mean ± std, p printed exactly."""

from __future__ import annotations

import statistics

from booster.report.summary import detail_table, paper_table, plot_hs_vs_p, seeds_note


def row(method, p, seed, hs, fa):
    return {"method": method, "task": "sst2", "n": 500, "p": p, "seed": seed, "hs": hs, "fa": fa}


ROWS = [row("sft", 0.05, 0, 80.0, 90.0), row("sft", 0.1, 0, 84.0, 88.0), row("sft", 0.1, 1, 86.0, 89.0),
        row("sft", 0.1, 2, 91.0, 90.0), row("booster", 0.05, 0, 70.0, 91.0), row("booster", 0.1, 0, 75.0, 92.0)]


def test_paper_table_has_hs_and_fa_per_p_with_seed_mean_and_std_and_averages():
    table = paper_table(ROWS, "sst2", 500)
    assert table[0] == ["method", "HS p=0.05", "HS p=0.1", "HS avg", "FA p=0.05", "FA p=0.1", "FA avg"]
    sft = table[1]
    hs = [84.0, 86.0, 91.0]
    assert sft[2] == f"{statistics.mean(hs):.1f} ± {statistics.stdev(hs):.1f}" == "87.0 ± 3.6"
    assert sft[3] == f"{(80.0 + 87.0) / 2:.1f}"  # average over p of the per-p means
    assert table[2][1:4] == ["70.0", "75.0", "72.5"]


def test_seeds_note_names_the_cells_with_several_seeds():
    note = seeds_note(ROWS, "sst2", 500)
    assert "p=0.1: seeds 0, 1, 2" in note and "p=0.05" not in note
    assert seeds_note([r for r in ROWS if r["seed"] == 0], "sst2", 500) is None


def test_detail_table_prints_p_exactly():
    table = detail_table(ROWS)
    p_col = table[0].index("p")
    assert [r[p_col] for r in table[1:]] == ["0.05", "0.1", "0.1", "0.1", "0.05", "0.1"]


def test_hs_plot_is_a_png(tmp_path):
    path = tmp_path / "hs.png"
    plot_hs_vs_p(ROWS, "sst2", 500, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_before_after_plot_draws_p_01_when_run(tmp_path):
    from booster.report.summary import plot_before_after

    rows = [dict(r, hs_before_attack=3.0) for r in ROWS]
    path = tmp_path / "bars.png"
    assert plot_before_after(rows, "sst2", 500, path) == 0.1
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_table_compares_attack_stages_run_with_the_same_bf16_kernels():
    from booster.report.summary import cost_table

    def costed(method, seed, attack_seconds, kernels, finetune="sft"):
        return {**row(method, 0.1, seed, 50.0, 80.0), "finetune": finetune, "align_seconds": 100.0,
                "align_peak_rss_mb": 1000.0, "attack_seconds": attack_seconds, "attack_peak_rss_mb": 2000.0,
                "bf16_kernels": kernels}

    rows = [costed("sft", 0, 300.0, None), costed("sft", 1, 300.0, None),
            costed("lisa", 0, 450.0, None, "lisa"), costed("lisa", 1, 1800.0, "float32", "lisa"),
            costed("booster", 0, 300.0, None), costed("booster", 1, 1200.0, "float32")]
    table = {r[0]: r for r in cost_table(rows)[1:]}
    assert table["lisa"][1:4] == ["attack", "450", "1.50"]  # the float32-products attack is left out
    assert table["booster"][1:4] == ["align", "100", "1.00"]  # alignment stages are all compared


def test_judge_note_states_the_judges_measured_error_or_that_it_was_not_measured():
    from booster.report.summary import judge_note

    measured = {"name": "answer-judge", "sha256": "7f3ca0191543f64b", "threshold": 0.83694,
                "hand_labeled_test": {"n": 471, "accuracy": 0.8132, "fnr": 0.2059, "fpr": 0.1761}}
    note = judge_note(measured)
    assert "`answer-judge`" in note and "7f3ca0191543" in note and "0.8369" in note
    assert "471 hand-labeled answers" in note and "accuracy 81.3%" in note and "FNR 20.6%" in note
    assert "FPR 17.6%" in note
    assert "not measured" in judge_note({"name": "stand-in", "sha256": None})
