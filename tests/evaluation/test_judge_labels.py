"""The hand-labeled answers (judges/labels): statistics helpers, validation, and the committed set's
size, split and agreement."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest

from booster.data import normalize_prompt
from booster.errors import BoosterError
from booster.evaluation.judges import labels as judge_labels
from booster.evaluation.judges.labels import LABELS_FILE, agreement, cohen_kappa, load_labels, wilson


def test_cohen_kappa_matches_the_hand_computed_value():
    # 10 items: 8 agreements; labeler A says 1 four times, B five times.
    a = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    b = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    po, pe = 0.7, 0.4 * 0.5 + 0.6 * 0.5
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)


def test_wilson_interval_matches_the_formula_and_contains_the_estimate():
    lo, hi = wilson(45, 50)
    z, n, p = 1.96, 50, 0.9
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert lo < 0.9 < hi
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson(1, 0)


def _row(**kw):
    base = {"id": "a", "prompt": "q", "answer": "a", "harmful": 0, "category": "refusal", "split": "test",
            "labels": [{"labeler": "x", "harmful": 0, "category": "refusal", "borderline": False}]}
    return {**base, **kw}


@pytest.mark.parametrize("bad, message", [
    ({"category": "nonsense"}, "unknown category"),
    ({"harmful": 1}, "contradicts category"),
    ({"split": "dev"}, "split must be one of"),
])
def test_load_labels_rejects_inconsistent_rows_naming_the_line(tmp_path, bad, message):
    f = tmp_path / "labels.jsonl"
    f.write_text(json.dumps(_row()) + "\n" + json.dumps(_row(id="b", **bad)) + "\n", encoding="utf-8")
    with pytest.raises(BoosterError, match=rf"labels.jsonl:2: .*{message}"):
        load_labels(f)


def test_load_labels_rejects_duplicate_ids(tmp_path):
    f = tmp_path / "labels.jsonl"
    f.write_text(json.dumps(_row()) + "\n" + json.dumps(_row()) + "\n", encoding="utf-8")
    with pytest.raises(BoosterError, match="duplicate id"):
        load_labels(f)


@pytest.fixture(scope="module")
def rows():
    return load_labels(LABELS_FILE)


def test_committed_set_is_large_enough_and_split_by_prompt(rows):
    assert len(rows) >= 1000
    test = judge_labels.part(rows, "test")
    assert len(test) >= 400
    splits = defaultdict(set)
    for r in rows:
        splits[normalize_prompt(r["prompt"])].add(r["split"])
    assert all(len(s) == 1 for s in splits.values()), "a prompt has answers in two splits"
    # the test and calibration splits are answers of the committed runs; train is not
    assert {r["source"] for r in test} == {"committed_run"}
    assert {r["source"] for r in judge_labels.part(rows, "train")} <= {"smollm2_judge_half", "smollm2_advbench",
                                                                          "smollm2_provider_harmful"}
    # every kind of committed run is represented in the test split
    origins = {(r["origin"]["method"], r["origin"]["stage"]) for r in test}
    for method in ("sft", "booster", "vaccine", "repnoise"):
        assert (method, "before_attack") in origins and (method, "after_attack") in origins
    assert ("unaligned", "before_attack") in origins
    assert {r["origin"].get("task") for r in test} >= {"sst2", "agnews", "gsm8k"}
    assert {r["origin"].get("finetune") for r in test} >= {"sft", "lisa"}


def test_committed_set_has_a_second_labeling_and_its_disagreements_were_settled(rows):
    ag = agreement(rows)
    assert ag["n"] >= 200
    assert 0.0 < ag["cohen_kappa"] <= 1.0
    for r in rows:
        if len(r["labels"]) == 2:
            assert r["labels"][0]["labeler"] != r["labels"][1]["labeler"]
            if r["labels"][0]["harmful"] != r["labels"][1]["harmful"]:
                assert r["adjudicated"], f"{r['id']}: disagreement not adjudicated"
        else:
            assert r["harmful"] == r["labels"][0]["harmful"] and not r["adjudicated"]


def test_committed_set_agreement_is_the_one_the_docs_report(rows):
    ag = agreement(rows)
    readme = (LABELS_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert f"{ag['cohen_kappa']:.3f}" in readme and f"{ag['n']} answers" in readme


def test_round3_labels_are_train_side_and_their_agreement_is_the_one_the_docs_report(rows):
    round3 = load_labels(LABELS_FILE.parent / "answers-round3.jsonl")
    assert len(round3) >= 500 and {r["split"] for r in round3} == {"train"}
    assert {r["origin"]["round"] for r in round3} == {3} and not {r["id"] for r in round3} & {r["id"] for r in rows}
    # no round-3 prompt is a prompt the judge is calibrated or measured on
    held_out = {normalize_prompt(r["prompt"]) for r in rows if r["split"] != "train"}
    assert not {normalize_prompt(r["prompt"]) for r in round3} & held_out
    ag = agreement(round3)
    assert ag["n"] >= 100
    readme = (LABELS_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert f"κ {ag['cohen_kappa']:.3f}" in readme and f"{100 * ag['raw_agreement']:.1f} % agreement" in readme


def test_probe_labels_cover_each_probes_answers_and_their_agreement_is_the_one_the_docs_report(rows):
    """Round 4 (the issue-14 and issue-15 probes): every labeled answer is the very answer the
    probe's run kept."""
    import json

    probes = load_labels(LABELS_FILE.parent / "answers-probes.jsonl")
    assert {r["origin"]["round"] for r in probes} == {4} and not {r["id"] for r in probes} & {r["id"] for r in rows}
    results = LABELS_FILE.parents[2] / "results"
    roots = [results / "cpu-smollm2-paper-protocol" / "probes", results / "cpu-smollm2-finetune-defenses" / "probes"]
    for name, stage in {(r["origin"]["probe"], r["origin"]["stage"]) for r in probes}:
        (runs,) = [root for root in roots if (root / name / "summary.json").exists()]  # issue 14's or 15's
        if stage == "after_attack":
            (samples,) = (runs / name / "runs").glob("*/samples-hs_val.jsonl")
        else:  # the aligned model's evaluation, in the run's ledger
            assert stage == "before_attack"
            (samples,) = [d / "samples.jsonl" for d in (runs / name / "stages" / "eval").iterdir()
                          if json.loads((d / "stage.json").read_text())["task"] == "hs_val"
                          and not json.loads((d / "stage.json").read_text())["attack"]]
        answers = [json.loads(line)["answer"] for line in samples.read_text(encoding="utf-8").splitlines()]
        labeled = {r["origin"]["index"]: r["answer"] for r in probes
                   if (r["origin"]["probe"], r["origin"]["stage"]) == (name, stage)}
        assert labeled == dict(enumerate(answers))
    verdicts = defaultdict(set)  # one label per distinct answer, whichever probe gave it
    for r in probes:
        verdicts[(r["prompt"], r["answer"])].add(r["harmful"])
    assert all(len(v) == 1 for v in verdicts.values())
    ag = agreement(probes)
    readme = (LABELS_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert f"κ {ag['cohen_kappa']:.3f}" in readme and f"{100 * ag['raw_agreement']:.1f} % agreement" in readme


def test_filter_sample_labels_are_the_grid_files_harmful_samples_and_agreement_is_documented(rows, prepared_data):
    """Round 5 (issue 15): one label for every distinct harmful-flagged sample of the user files
    `booster screen` screened, and the agreement the labels' README states."""
    import json

    from booster.methods.userdata import answer_text, prompt_text
    from booster.pipeline.attack import Cell, user_data

    labels = load_labels(LABELS_FILE.parent / "filter-samples.jsonl")
    assert {r["origin"]["round"] for r in labels} == {5} and not {r["id"] for r in labels} & {r["id"] for r in rows}
    screen = json.loads((LABELS_FILE.parents[2] / "results" / "cpu-smollm2-finetune-defenses" / "screen.json")
                        .read_text(encoding="utf-8"))
    manifest = json.loads((prepared_data / "manifest.json").read_text(encoding="utf-8"))
    pool = "attacker_harmful"
    assert manifest["pools"][pool]["sha256"] == screen["protocol"]["data"]["pools"][pool]["sha256"]
    harmful = {(prompt_text(r), answer_text(r))
               for e in screen["cells"] if e["method"] == "modfilter"
               for r in user_data(prepared_data, Cell(e["task"], e["n"], e["p"], e["seed"], e["recipe"]))
               if r["harmful"]}
    assert {(r["prompt"], r["answer"]) for r in labels} == harmful and len(labels) == len(harmful)
    ag = agreement(labels)
    assert ag["n"] >= 30
    readme = (LABELS_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert f"κ {ag['cohen_kappa']:.3f}" in readme and f"{100 * ag['raw_agreement']:.1f} % agreement" in readme


def _labels_script(name: str):
    """A provenance script of judges/labels as a module (they import each other by file name)."""
    import importlib.util
    import sys

    sys.path.insert(0, str(LABELS_FILE.parent))
    spec = importlib.util.spec_from_file_location(name, LABELS_FILE.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("round_", [6, 7])
def test_grid_labels_are_the_grid_runs_answers_on_one_common_prompt_sample(rows, round_):
    """Rounds 6 and 7 (the issue-14 and issue-15 grids): every labeled answer is the very answer its
    run kept, a run labeled in part holds the first K prompts of the one fixed sample order (so runs
    compare paired on shared prompts), and the agreement is the one the labels' README states."""
    import json

    grid_labels = _labels_script("grid_labels")
    labels = load_labels(grid_labels.labels_file(round_))
    assert {r["origin"]["round"] for r in labels} == {round_} and not {r["id"] for r in labels} & {r["id"] for r in rows}
    by_run = defaultdict(dict)
    for r in labels:
        by_run[r["origin"]["run"]][r["origin"]["index"]] = r["answer"]
    assert round_ != 6 or "sft-sst2-n500-p0.1-seed0" in by_run
    verdicts = defaultdict(set)  # one label per distinct answer, whichever run gave it
    for r in labels:
        verdicts[(r["prompt"], r["answer"])].add(r["harmful"])
    assert all(len(v) == 1 for v in verdicts.values())
    for run, labeled in by_run.items():
        path = grid_labels.preset_dir(round_) / "runs" / run / "samples-hs.jsonl"
        answers = [json.loads(line)["answer"] for line in path.read_text(encoding="utf-8").splitlines()]
        assert all(answers[i] == a for i, a in labeled.items())
        assert sorted(labeled) == sorted(grid_labels.sample_order(len(answers))[: len(labeled)])
    ag = agreement(labels)
    readme = (LABELS_FILE.parent / "README.md").read_text(encoding="utf-8")
    assert f"κ {ag['cohen_kappa']:.3f}" in readme and f"{100 * ag['raw_agreement']:.1f} % agreement" in readme


def test_round_7_shares_round_6s_labels_only_for_identical_answers():
    """The two grids share their SFT and Lisa cells: round 7's scores count round 6's labels of a
    run only where that run's answers are the very ones round 7's grid kept, and an answer labeled
    in both rounds carries round 6's label."""
    import json

    grid_labels = _labels_script("grid_labels")
    rows7, settled = grid_labels._labeled_rows(7)
    shared = [r for r in rows7 if r["origin"]["round"] == 6]
    assert shared  # SFT and Lisa at p=0.1
    for r in shared:
        path = grid_labels.preset_dir(7) / "runs" / r["origin"]["run"] / "samples-hs.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        assert json.loads(lines[r["origin"]["index"]])["answer"] == r["answer"]
    six = {(r["prompt"], r["answer"]): r["harmful"] for r in load_labels(grid_labels.labels_file(6))}
    twins = [r for r in rows7 if r["origin"]["round"] == 7 and (r["prompt"], r["answer"]) in six]
    assert all(r["harmful"] == six[(r["prompt"], r["answer"])] for r in twins)
    assert settled["identical_to_round_6"] == len(twins)


def test_grid_label_sample_order_is_a_fixed_permutation():
    grid_labels = _labels_script("grid_labels")
    order = grid_labels.sample_order(200)
    assert sorted(order) == list(range(200)) and order != list(range(200))
    assert order == grid_labels.sample_order(200)  # the same for every run and every session


def test_settle_duplicates_refuses_an_unsettled_group_and_applies_a_settled_one():
    build_set = _labels_script("build_set")
    row = {"prompt": "q", "answer": "a", "category": "refusal", "harmful": 0, "borderline": False}
    with pytest.raises(SystemExit, match="labeled both ways"):
        build_set.settle_duplicates([{**row, "id": "ZZ001"}, {**row, "id": "ZZ002", "harmful": 1,
                                                               "category": "harmful_compliance"}])
    # a committed settled group: every id takes the decision, whatever its labeler said
    rows = build_set.settle_duplicates([{**row, "id": "G0040"}, {**row, "id": "G0345", "harmful": 1,
                                                                 "category": "harmful_compliance"}])
    assert [(r["harmful"], r["category"], r["adjudicated"]) for r in rows] == [(0, "mild_engagement", True)] * 2
    agreeing = [{**row, "id": "ZZ003"}, {**row, "id": "ZZ004"}]
    assert build_set.settle_duplicates([dict(r) for r in agreeing]) == agreeing
