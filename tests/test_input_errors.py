"""Hostile or mistaken user input gives one line ``booster: error: ...`` and exit code 2.

One test per case of issue 16's table that concerns user files: deep JSON nesting, paths that
cannot be read (permission, folder, missing, symlink loop, non-UTF-8), adapter folders that
are not peft LoRA adapters, and a ``--out`` that is a file. No model is loaded here: every
error must come before that.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import socket

import pytest

import booster.data.userdata as userdata
from booster.cli import main
from booster.data.userdata import MAX_DEPTH, nesting_exceeds
from booster.errors import BoosterError, DataError
from booster.models.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, check_adapter_folder

GOOD = {"messages": [{"role": "user", "content": "Hi [{"}, {"role": "assistant", "content": "Hello ]}"}]}


def error_line(capsys) -> str:
    """The one stderr line of a failed command (and nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("booster: error: ")
    assert captured.out == ""
    return lines[0]


def check(path, capsys) -> str:
    assert main(["data", "check", str(path)]) == 2
    return error_line(capsys)


# -- deep nesting ------------------------------------------------------------------------------

def test_100000_open_brackets(tmp_path, capsys):
    f = tmp_path / "deep.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" + "[" * 100_000 + "\n")
    assert check(f, capsys) == f"booster: error: {f}:2: nesting deeper than {MAX_DEPTH} levels (arrays/objects inside each other)"


def test_valid_record_nested_5000_deep(tmp_path, capsys):
    f = tmp_path / "deep.jsonl"
    f.write_text('{"x": ' * 5000 + json.dumps(GOOD) + "}" * 5000 + "\n")
    assert check(f, capsys) == f"booster: error: {f}:1: nesting deeper than {MAX_DEPTH} levels (arrays/objects inside each other)"


def test_nesting_limit_is_exact_and_ignores_brackets_in_strings(tmp_path, capsys):
    at_limit = {"meta": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)), **GOOD}
    assert not nesting_exceeds(json.dumps(at_limit))
    over = {"meta": json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH), **GOOD}
    assert nesting_exceeds(json.dumps(over))
    # Brackets inside strings (escaped quotes included) are text, not nesting.
    text = {**GOOD, "note": '\\"[' * 10_000 + "{" * 10_000}
    assert not nesting_exceeds(json.dumps(text))
    f = tmp_path / "ok.jsonl"
    f.write_text(json.dumps(at_limit) + "\n" + json.dumps(text) + "\n")
    assert main(["data", "check", str(f)]) == 0
    assert "2 records" in capsys.readouterr().out


def test_number_with_too_many_digits(tmp_path, capsys):
    f = tmp_path / "big.jsonl"
    f.write_text('{"n": ' + "9" * 10_000 + ', "prompt": "p", "completion": "c"}\n')
    line = check(f, capsys)
    assert line.startswith(f"booster: error: {f}:1: invalid JSON (") and "digits" in line


def test_huge_role_is_quoted_short(tmp_path, capsys):
    f = tmp_path / "role.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "x" * 1_000_000, "content": "c"}]}) + "\n")
    line = check(f, capsys)
    assert "messages[0] has unknown role 'xxx" in line and len(line) < 300


# -- paths that cannot be read -------------------------------------------------------------------

def test_permission_denied(tmp_path, capsys, monkeypatch):
    f = tmp_path / "secret.jsonl"
    f.write_text(json.dumps(GOOD) + "\n")
    f.chmod(0)
    if os.access(f, os.R_OK):  # root reads anything: make the open fail as it would for a user
        def denied(path, *args, **kwargs):
            if os.fspath(path) == str(f):
                raise PermissionError(errno.EACCES, "Permission denied", str(f))
            return builtins.open(path, *args, **kwargs)

        monkeypatch.setattr(userdata, "open", denied, raising=False)
    assert check(f, capsys) == f"booster: error: {f}: cannot read it: permission denied"


@pytest.mark.parametrize("kind, problem", [
    ("missing", "file does not exist"),
    ("folder", "is a folder, expected a JSONL file"),
    ("loop", "is a symlink loop (following its links leads back to a link already seen)"),
    ("broken_link", "is a broken symlink (its target does not exist)"),
    ("under_a_file", "a folder in this path is a file"),
    ("socket", "is not a regular file (a pipe, socket or device), expected a JSONL file"),
])
def test_unreadable_paths(tmp_path, capsys, request, kind, problem):
    f = tmp_path / "data.jsonl"
    if kind == "folder":
        f.mkdir()
    elif kind == "loop":
        (tmp_path / "other").symlink_to(f)
        f.symlink_to(tmp_path / "other")
    elif kind == "broken_link":
        f.symlink_to(tmp_path / "gone.jsonl")
    elif kind == "under_a_file":
        (tmp_path / "file").write_text("x")
        f = tmp_path / "file" / "data.jsonl"
    elif kind == "socket":  # like a pipe, not a file; unlike a pipe, opening it cannot block
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(f))
        request.addfinalizer(server.close)
    with pytest.raises(DataError) as e:
        userdata.load_user_jsonl(f)
    assert (e.value.path, e.value.line, e.value.problem) == (str(f), None, problem)
    assert check(f, capsys) == f"booster: error: {f}: {problem}"


def test_non_utf8_bytes(tmp_path, capsys):
    f = tmp_path / "latin1.jsonl"
    f.write_bytes(json.dumps(GOOD).encode() + b'\n{"prompt": "\xff\xfe", "completion": "c"}\n')
    assert check(f, capsys) == f"booster: error: {f}:2: not valid UTF-8 (byte 0xff at column 13)"


# -- adapter folders -------------------------------------------------------------------------------

def adapter(tmp_path, config_text: str):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / ADAPTER_CONFIG).write_text(config_text)
    (folder / ADAPTER_WEIGHTS).write_bytes(b"not loaded by these tests")
    return folder


@pytest.mark.parametrize("config_text, problem", [
    ("{}", "not a peft adapter config: 'peft_type' is missing"),
    ("[]", "not a peft adapter config (expected a JSON object with 'peft_type', got list)"),
    ("{peft_type: LORA}", "invalid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ('{"peft_type": "FOO"}', "peft_type is 'FOO'; only LoRA adapters (\"LORA\") are supported"),
    ('{"peft_type": "LORA", "r": "8"}', "'r' has the wrong type (str: '8')"),
    ('{"peft_type": "LORA", "target_modules": 5}', "'target_modules' has the wrong type (int: 5)"),
    ("[" * 100_000, f"nesting deeper than {MAX_DEPTH} levels"),
])
def test_adapter_config_that_is_not_peft(tmp_path, config_text, problem):
    folder = adapter(tmp_path, config_text)
    with pytest.raises(DataError) as e:
        check_adapter_folder(folder)
    assert e.value.path == str(folder / ADAPTER_CONFIG) and e.value.problem.startswith(problem)


def eval_with_adapter(path, tmp_path) -> int:
    # --data names no prepared data: an error about the adapter proves it was checked first,
    # before the data, the judge or the model.
    return main(["eval", "--model", "smollm2-135m-instruct", "--adapter", str(path),
                 "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "run")])


def test_eval_rejects_non_peft_adapter_before_loading(tmp_path, capsys):
    folder = adapter(tmp_path, "{}")
    assert eval_with_adapter(folder, tmp_path) == 2
    line = error_line(capsys)
    assert line.startswith(f"booster: error: {folder / ADAPTER_CONFIG}: not a peft adapter config")
    assert "'peft_type' is missing" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind, problem", [
    ("file", "is a file, not an adapter folder"),
    ("loop", "is a symlink loop"),
    ("missing", "does not exist"),
])
def test_eval_adapter_path_kinds(tmp_path, capsys, kind, problem):
    path = tmp_path / "adapter"
    if kind == "file":
        path.write_text("{}")
    elif kind == "loop":
        path.symlink_to(path)
    assert eval_with_adapter(path, tmp_path) == 2
    line = error_line(capsys)
    assert f"'{path}' {problem}" in line
    assert not (tmp_path / "run").exists()


# -- output paths ------------------------------------------------------------------------------

def test_prepare_out_is_a_file(tmp_path, capsys):
    out = tmp_path / "data"
    out.write_text("keep me")
    assert main(["data", "prepare", "--source", str(tmp_path / "no-source"), "--out", str(out)]) == 2
    assert error_line(capsys) == f"booster: error: {out} exists and is a file (--out must be a folder)"
    assert out.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["data"]


@pytest.mark.parametrize("kind, problem", [
    ("under_a_file", "{tmp}/file exists and is a file (a folder above --out {out})"),
    ("loop", "{tmp}/loop is a symlink loop (following its links leads back to a link already seen) (--out {out})"),
    ("manifest_is_folder", "{out}/manifest.json is a folder (prepare writes its manifest file there)"),
    ("pools_is_file", "{out}/pools exists and is a file (prepare writes its pools folder there)"),
])
def test_prepare_out_path_kinds(tmp_path, capsys, kind, problem):
    if kind == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "data"
    elif kind == "loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        out = tmp_path / "loop" / "data"
    else:
        out = tmp_path / "data"
        out.mkdir()
        if kind == "manifest_is_folder":
            (out / "manifest.json").mkdir()
        else:
            (out / "pools").write_text("x")
    assert main(["data", "prepare", "--source", str(tmp_path / "no-source"), "--out", str(out)]) == 2
    assert error_line(capsys) == "booster: error: " + problem.format(tmp=tmp_path, out=out)


def test_mix_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "mix.jsonl"
    assert main(["data", "mix", "--data", str(tmp_path), "--task", "sst2", "--n", "3", "--p", "0",
                 "--out", str(out)]) == 2
    assert error_line(capsys) == f"booster: error: {tmp_path / 'file'} exists and is a file (a folder above --out {out})"


def test_adapter_that_does_not_fit_the_model(tmp_path):
    """What only loading can find (weights of another model, a corrupt weights file, modules
    the model lacks) is still one BoosterError naming the folder."""
    from booster.models.adapters import LoraSettings, apply_adapter, attach_lora, save_adapter
    from booster.models.tiny import tiny_random_llama

    folder = tmp_path / "adapter"
    save_adapter(attach_lora(tiny_random_llama(seed=0)[0], LoraSettings(rank=2)), folder)
    with pytest.raises(BoosterError, match=f"adapter '{folder}' does not fit this model"):
        apply_adapter(tiny_random_llama(seed=0, hidden_size=32, intermediate_size=64)[0], folder)

    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    (folder / ADAPTER_CONFIG).write_text(json.dumps({**config, "target_modules": ["no_such_proj"]}))
    with pytest.raises(BoosterError, match=f"cannot load adapter '{folder}': .*no_such_proj"):
        apply_adapter(tiny_random_llama(seed=0)[0], folder)

    (folder / ADAPTER_CONFIG).write_text(json.dumps(config))
    (folder / ADAPTER_WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(BoosterError, match=f"cannot load adapter '{folder}': .*header"):
        apply_adapter(tiny_random_llama(seed=0)[0], folder)
