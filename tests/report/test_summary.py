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
    assert plot_hs_vs_p(ROWS, "sst2", 500, path)
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


def test_cost_table_shows_a_repair_at_the_cost_of_its_own_stage():
    from booster.report.summary import cost_table

    base = {"finetune": "sft", "align_seconds": 100.0, "align_peak_rss_mb": 1000.0, "attack_seconds": 300.0,
            "attack_peak_rss_mb": 2000.0, "bf16_kernels": None}
    rows = [{**row("sft", 0.1, 0, 50.0, 80.0), **base},
            {**row("fix", 0.1, 0, 20.0, 80.0), **base, "repair": "fix", "repair_key": "k", "repair_seconds": 7.0,
             "repair_peak_rss_mb": 900.0}]
    table = {r[0]: r for r in cost_table(rows)[1:]}
    assert table["fix"] == ["fix", "repair", "7", "–", "900", "–"]  # SFT's run has no repair to compare


def test_judge_note_states_the_judges_measured_error_or_that_it_was_not_measured():
    from booster.report.summary import judge_note

    measured = {"name": "answer-judge", "sha256": "7f3ca0191543f64b", "threshold": 0.83694,
                "hand_labeled_test": {"n": 471, "accuracy": 0.8132, "fnr": 0.2059, "fpr": 0.1761}}
    note = judge_note(measured)
    assert "`answer-judge`" in note and "7f3ca0191543" in note and "0.8369" in note
    assert "471 hand-labeled answers" in note and "accuracy 81.3%" in note and "FNR 20.6%" in note
    assert "FPR 17.6%" in note
    assert "not measured" in judge_note({"name": "stand-in", "sha256": None})


def aligned(method, over_refusal_before, fa_before, align_key, p=0.1, seed=0, hs=50.0, over_refusal=2.0):
    return {**row(method, p, seed, hs, 85.0), "hs_before_attack": 1.0, "fa_before_attack": fa_before,
            "over_refusal": over_refusal, "over_refusal_before_attack": over_refusal_before, "align_key": align_key}


UNALIGNED = {"method": "unaligned", "task": "sst2", "n": None, "p": None, "seed": None, "hs": 32.0, "fa": 23.0,
             "hs_before_attack": 32.0, "fa_before_attack": 23.0, "over_refusal": 0.0}


def test_warning_names_the_aligned_model_that_refuses_most_harmless_instructions_and_only_it():
    from booster.report.summary import flattery_warnings

    rows = [UNALIGNED, aligned("refuser", 90.0, 60.0, "a"), aligned("helper", 5.0, 60.0, "b")]
    lines = flattery_warnings(rows)
    assert len(lines) == 1
    assert "refuser (90%)" in lines[0] and "helper" not in lines[0]
    assert "refuse more than 50% of harmless instructions" in lines[0] and "refusal, not safety" in lines[0]


def test_warning_on_fa_near_zero_only_where_the_unaligned_model_could_do_the_task():
    from booster.report.summary import FA_MARGIN, FA_NEAR_ZERO, flattery_warnings

    rows = [UNALIGNED, aligned("broken", 5.0, 0.5, "a"), aligned("fine", 5.0, 40.0, "b")]
    [line] = flattery_warnings(rows)
    assert "broken (FA 0.5)" in line and "fine" not in line and "unaligned model scores 23.0" in line
    # where the base model itself scores ~0 (GSM8K for a tiny model), FA 0 says nothing about alignment
    hard = [{**UNALIGNED, "fa": FA_NEAR_ZERO - FA_MARGIN + 1.0}, aligned("broken", 5.0, 0.5, "a")]
    assert flattery_warnings(hard) == []
    # with no unaligned reference, FA below FA_NEAR_ZERO alone triggers it
    assert "broken (FA 0.5)" in flattery_warnings([aligned("broken", 5.0, 0.5, "a")])[0]


def test_over_refusal_before_the_attack_comes_from_the_aligned_models_own_evaluation():
    from booster.report.summary import with_before_attack

    protocol = {"stages": [
        {"stage": "eval", "task": "over_refusal", "align": "a", "attack": None, "metrics": {"over_refusal": 91.0}},
        {"stage": "eval", "task": "over_refusal", "align": "a", "attack": "k", "metrics": {"over_refusal": 3.0}},
        {"stage": "eval", "task": "sst2", "align": "b", "attack": None, "metrics": {"fa": 1.0}}]}
    rows = [aligned("sft", None, 0.0, "a"), aligned("booster", None, 0.0, "b"), UNALIGNED]
    filled = with_before_attack(rows, protocol)
    assert [r["over_refusal_before_attack"] for r in filled] == [91.0, None, 0.0]  # None: not recorded


def test_before_after_table_puts_hs_beside_over_refusal_and_fa_and_prints_dashes_for_unrecorded():
    from booster.report.summary import before_after_table, over_refusal_table

    rows = [UNALIGNED, aligned("sft", 90.0, 0.0, "a", p=0.05, hs=40.0, over_refusal=4.0),
            aligned("sft", 90.0, 0.0, "a", p=0.1, hs=60.0, over_refusal=2.0),
            {**aligned("lisa", None, 0.0, "c"), "hs_before_attack": None}]
    table = before_after_table(rows, "sst2", 500)
    assert table[0] == ["method", "HS before", "over-refusal before", "FA before",
                        "HS after", "over-refusal after", "FA after"]
    assert table[1] == ["unaligned (not attacked)", "32.0", "0.0", "23.0", "–", "–", "–"]
    assert table[2] == ["sft", "1.0", "90.0", "0.0", "50.0", "3.0", "85.0"]  # after: mean over p
    assert table[3][:4] == ["lisa", "–", "–", "0.0"]
    ort = over_refusal_table(rows, "sst2", 500)
    assert [r[0] for r in ort[1:]] == [r[0] for r in paper_table(rows, "sst2", 500)[1:]] == ["sft", "lisa"]
    assert ort[1] == ["sft", "4.0", "2.0", "3.0"]


def test_report_shows_the_warning_and_over_refusal_beside_every_hs_table(tmp_path):
    from booster.report.summary import write_report

    rows = [UNALIGNED, aligned("refuser", 90.0, 60.0, "a", p=0.05), aligned("refuser", 90.0, 60.0, "a"),
            aligned("helper", 5.0, 60.0, "b", p=0.05), aligned("helper", 5.0, 60.0, "b")]
    write_report(tmp_path, rows, {"attack": []}, {"config": {"name": "t"}, "judge": {"name": "kw"}})
    md = (tmp_path / "report.md").read_text()
    warning = next(line for line in md.splitlines() if line.startswith("- **Warning:**"))
    assert "refuser (90%)" in warning and "helper" not in warning
    assert md.index("Warning") < md.index("## Before and after the attack: sst2, n=500") \
        < md.index("## HS (lower is better) and FA after the attack") < md.index("## Over-refusal after the attack")
    assert "| over_refusal_before_attack |" in md  # the detail table too
    page = (tmp_path / "report.html").read_text()
    assert "<strong>Warning:</strong>" in page and "`" not in page and page.count("<table>") >= 4


def test_report_tables_what_each_data_defense_did_to_the_users_file(tmp_path):
    """Filters show leakage and false removals as counts and rates; mixing defenses the examples they
    added; runs without a data defense are not in the table."""
    from booster.report.summary import user_data_table, write_report

    saft = {"filter": "SAFT top singular direction", "select": "share", "share": 0.1, "threshold": 2374.4,
            "n_in": 500, "n_kept": 450, "n_removed": 50, "harmful_in": 50, "harmful_kept": 3, "leakage_pct": 6.0,
            "benign_in": 450, "benign_removed": 3, "false_removal_pct": 0.6667}
    mod = {"filter": "moderation judge", "threshold": 0.8369, "n_in": 36, "n_kept": 33, "n_removed": 3,
           "harmful_in": 0, "harmful_kept": 0, "leakage_pct": None, "benign_in": 36, "benign_removed": 3,
           "false_removal_pct": 8.33}
    rows = [{**aligned("saft", 0.0, 0.0, "a"), "user_data": saft},
            {**aligned("modfilter", 0.0, 0.0, "a"), "attack_recipe": "identity_shift", "p": 0.0, "user_data": mod},
            {**aligned("bea", 0.0, 0.0, "a"), "user_data": {"trigger": "x y", "safety_added": 11, "n_user": 500}},
            aligned("sft", 0.0, 0.0, "a")]
    table = user_data_table(rows)
    assert [r[0] for r in table[1:]] == ["saft", "modfilter", "bea"]
    assert table[1][4:] == ["SAFT top singular direction, share 0.1", "500", "50", "3 / 50 (6.0 %)",
                            "3 / 450 (0.7 %)", "–"]
    assert table[2][1] == "identity_shift" and table[2][7] == "– (none in)" and table[2][8] == "3 / 36 (8.3 %)"
    assert table[3][4:] == ["mixing", "500", "0", "–", "–", "11"]
    write_report(tmp_path, rows, {"attack": []}, {"config": {"name": "t"}, "judge": {"name": "kw"}})
    assert "## What the data defenses did to the user's file" in (tmp_path / "report.md").read_text()
    assert user_data_table([aligned("sft", 0.0, 0.0, "a")]) == [table[0]]
