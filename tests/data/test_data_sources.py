"""Raw-data sources: the declarative table, local files, and the hub through a fake loader."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from booster.data import DATASETS, HubSource, LocalSource, open_source, prepare
from booster.tasks import agnews_text, gsm8k_final_answer, user_task
from booster.data.text import normalize_prompt, seeded_order
from booster.errors import BoosterError, DataError


# ---------------------------------------------------------------- normalisation and order

def test_normalize_prompt():
    assert normalize_prompt("  How DO I\tmake\n\n a Bomb?  ") == "how do i make a bomb?"
    assert normalize_prompt("Straße\u00a0X") == "strasse x"  # casefold, and NBSP is whitespace
    assert normalize_prompt("") == ""


def test_seeded_order_matches_spec():
    keys = [f"Prompt {i}" for i in range(50)] + ["prompt  0", "PROMPT 1"]  # duplicates after normalising
    expected = sorted({f"prompt {i}" for i in range(50)},
                      key=lambda k: hashlib.sha256(f"7:salty:{k}".encode()).hexdigest())
    assert seeded_order(keys, 7, "salty") == expected
    assert seeded_order(reversed(keys), 7, "salty") == expected  # input order is irrelevant
    assert seeded_order(keys, 8, "salty") != expected and seeded_order(keys, 7, "other") != expected
    assert seeded_order(["b"], salt="s") == ["b"]  # default seed 0
    assert seeded_order(["a", "b", "c"]) == sorted("abc", key=lambda k: hashlib.sha256(f"0::{k}".encode()).hexdigest())


def test_task_helpers():
    assert gsm8k_final_answer("so 3 + 4 = 7\n#### 1,080") == "1080"
    assert gsm8k_final_answer("no marker") is None
    assert agnews_text(" Title ", "Desc. ") == "Title Desc."
    with pytest.raises(BoosterError, match=r"unknown task 'x' \(valid tasks: sst2, agnews, gsm8k\)"):
        user_task("x")


# ---------------------------------------------------------------- local

@pytest.mark.integration
def test_table_matches_real_files(raw_root):
    for ds in DATASETS.values():
        assert (raw_root / ds.path).is_file(), ds.path
        assert (ds.hub is None) == bool(ds.no_hub), ds.name  # every gap is explained
    src = LocalSource(raw_root)
    assert [r["name"] for r in src.read("ag_news_classes")] == ["World", "Sports", "Business", "Sci/Tech"]
    assert len(src.read("hh_rlhf_harmless_test")) == 2312
    assert len(src.read("saferlhf_2000")) == 2000
    assert src.read("sst2_dev")[0] == {"sentence": "it 's a charming and often affecting journey . ", "label": 1}
    assert set(src.provenance()["files"]) == {"ag_news/classes.txt", "hh_rlhf/harmless-base_test.jsonl.gz",
                                              "saferlhf/safe_rlhf_2000.jsonl", "sst2/dev.tsv"}


def test_user_folder_with_same_layout(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2/dev.tsv").write_text("sentence\tlabel\ngood film\t1\n\nbad\t0\n", encoding="utf-8")
    assert LocalSource(tmp_path).read("sst2_dev") == [{"sentence": "good film", "label": 1},
                                                      {"sentence": "bad", "label": 0}]
    (tmp_path / "sst2/dev.tsv").write_text("sentence\tlabel\ngood film\t1\nbad\t0\textra\n")
    with pytest.raises(DataError, match=r"sst2/dev.tsv:3: expected 2 tab-separated columns, got 3"):
        LocalSource(tmp_path).read("sst2_dev")
    (tmp_path / "sst2/dev.tsv").write_text("sentence\tlabel\ngood film\tyes\n")
    with pytest.raises(DataError, match=r"dev.tsv:2: field 'label': expected an integer, got 'yes'"):
        LocalSource(tmp_path).read("sst2_dev")
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k/test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n')
    with pytest.raises(DataError, match=r"gsm8k/test.jsonl:2: missing field 'answer'"):
        LocalSource(tmp_path).read("gsm8k_test")
    with pytest.raises(DataError, match=r"advbench/harmful_behaviors.csv: file not found \(dataset 'advbench'"):
        LocalSource(tmp_path).read("advbench")
    with pytest.raises(BoosterError, match="data source folder does not exist"):
        LocalSource(tmp_path / "nope")
    with pytest.raises(BoosterError, match="unknown dataset 'imdb'"):
        LocalSource(tmp_path).read("imdb")
    assert isinstance(open_source(tmp_path), LocalSource) and isinstance(open_source("hub"), HubSource)


# ---------------------------------------------------------------- hub (fake loader, no network)

class FakeHub:
    """Serves hub-format rows and records every call."""

    def __init__(self, tables):
        self.tables, self.calls = tables, []

    def __call__(self, repo, config, split, **kwargs):
        self.calls.append((repo, config, split, kwargs))
        return self.tables[(repo, split)]


def test_hub_maps_columns_to_local_schema():
    fake = FakeHub({
        ("stanfordnlp/sst2", "validation"): [{"idx": 0, "sentence": "fine .", "label": 1}],
        ("fancyzhx/ag_news", "test"): [{"text": "Title here Body text.", "label": 3}],
        ("walledai/AdvBench", "train"): [{"prompt": "do harm", "target": "Sure"}],
        ("Anthropic/hh-rlhf", "test"): [{"chosen": "c", "rejected": "r"}],
        ("openai/gsm8k", "train"): [{"question": "q", "answer": "a #### 2"}],
    })
    hub = HubSource(loader=fake)
    assert hub.read("sst2_dev") == [{"sentence": "fine .", "label": 1}]
    row = hub.read("ag_news_test")[0]
    assert row == {"class": 4, "title": "", "description": "Title here Body text."}
    # the task text is the same as from the local file's separate title and description
    assert agnews_text(row["title"], row["description"]) == agnews_text("Title here", "Body text.")
    assert hub.read("advbench") == [{"goal": "do harm", "target": "Sure"}]
    assert hub.read("hh_rlhf_harmless_test") == [{"chosen": "c", "rejected": "r"}]
    assert hub.read("gsm8k_train")[0]["answer"] == "a #### 2"
    assert [r["name"] for r in hub.read("ag_news_classes")] == ["World", "Sports", "Business", "Sci/Tech"]
    assert fake.calls == [
        ("stanfordnlp/sst2", None, "validation", {}), ("fancyzhx/ag_news", None, "test", {}),
        ("walledai/AdvBench", None, "train", {}), ("Anthropic/hh-rlhf", None, "test", {"data_dir": "harmless-base"}),
        ("openai/gsm8k", "main", "train", {}),
    ]  # class names come without a download
    prov = hub.provenance()
    assert prov["kind"] == "hub" and prov["files"]["sst2/dev.tsv"]["hub"] == "stanfordnlp/sst2"
    assert len(prov["files"]["sst2/dev.tsv"]["rows_sha256"]) == 64


@pytest.mark.integration
def test_hub_and_local_give_identical_rows(raw_root):
    local = LocalSource(raw_root)
    rows = local.read("beavertails_30k_test")
    fake = FakeHub({("PKU-Alignment/BeaverTails", "30k_test"): [dict(r) for r in rows]})
    assert HubSource(loader=fake).read("beavertails_30k_test") == rows


def test_hub_errors(tmp_path, monkeypatch):
    fake = FakeHub({("PKU-Alignment/BeaverTails", "30k_test"): [
        {"prompt": "p", "response": "r", "category": {"animal_abuse": False}, "is_safe": False}]})
    with pytest.raises(BoosterError) as e:
        HubSource(loader=fake).read("beavertails_330k_a")
    assert "'beavertails_330k_a' (beavertails/330k_subset_a.jsonl) has no Hugging Face hub equivalent" in str(e.value)
    assert "--source DIR" in str(e.value)
    # prepare from the hub stops at the first dataset without a hub copy, writing nothing
    with pytest.raises(BoosterError, match="beavertails_330k_a"):
        prepare(HubSource(loader=fake), tmp_path / "out")
    assert not (tmp_path / "out").exists()

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'stanfordnlp/sst2' on the Hub (LocalEntryNotFoundError)\nmore")
    with pytest.raises(BoosterError) as e:
        HubSource(loader=offline).read("sst2_train")
    assert str(e.value) == (
        "could not load hub:stanfordnlp/sst2:train for dataset 'sst2_train' from the Hugging Face hub "
        "(ConnectionError: Couldn't reach 'stanfordnlp/sst2' on the Hub (LocalEntryNotFoundError)); "
        "offline by default: use --source DIR with a local copy, or set BOOSTER_ONLINE=1")

    with pytest.raises(DataError, match=r"hub:fancyzhx/ag_news:test: row 1: cannot read field 'class'"):
        HubSource(loader=FakeHub({("fancyzhx/ag_news", "test"): [{"content": "x"}]})).read("ag_news_test")

    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails
    with pytest.raises(BoosterError, match=r"optional 'datasets' package \(pip install 'booster\[hub\]'\)"):
        HubSource().read("sst2_dev")


def test_cli_hub_source_without_datasets(tmp_path, capsys, monkeypatch):
    from booster.cli import main

    monkeypatch.setitem(sys.modules, "datasets", None)
    assert main(["data", "prepare", "--source", "hub", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "optional 'datasets' package" in err[0]
    assert not (tmp_path / "out").exists()


def test_data_package_stays_light():
    code = ("import sys, booster.data, booster.data.cli; "
            "heavy = {'torch', 'transformers', 'datasets', 'numpy'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_progress_bar_only_when_slow(capsys):
    from booster.data.prepare import TimedProgress

    quick = TimedProgress(threshold_s=60)
    for step in ("a", "b", "c"):
        quick(step)
    quick.close()
    assert capsys.readouterr().err == ""
    slow = TimedProgress(threshold_s=-1)
    for step in ("a", "b", "c"):
        slow(step)
    slow.close()
    assert "data prepare" in capsys.readouterr().err
