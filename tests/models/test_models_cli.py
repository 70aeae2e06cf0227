"""booster model info / generate."""

from __future__ import annotations

import json
import shutil

import pytest

from booster.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("booster: error: ")
    return lines[0]


@pytest.mark.parametrize("action", [["info"], ["generate", "--prompt", "hi"]])
def test_nonexistent_path_exits_2_with_one_line(action, capsys, tmp_path):
    missing = str(tmp_path / "no" / "such" / "model")
    assert main(["model", action[0], missing, *action[1:]]) == 2
    line = _one_error_line(capsys)
    assert f"model path '{missing}' does not exist" in line


def test_model_path_symlink_loop_and_broken_link_say_what_they_are(capsys, tmp_path):
    loop, broken = tmp_path / "loop", tmp_path / "broken"
    loop.symlink_to(loop)
    broken.symlink_to(tmp_path / "gone")
    assert main(["model", "info", str(loop)]) == 2
    assert "is a symlink loop" in _one_error_line(capsys)
    assert main(["model", "info", str(broken)]) == 2
    assert "is a broken symlink" in _one_error_line(capsys)


def test_unknown_hub_id_offline_exits_2(capsys):
    assert main(["model", "info", "nobody-here/nothing-like-this"]) == 2
    line = _one_error_line(capsys)
    assert "'nobody-here/nothing-like-this' is neither a known short name" in line
    assert "tiny-random-llama" in line


def test_bin_only_folder_exits_2(capsys, tmp_path, tiny_folder):
    shutil.copy(tiny_folder / "config.json", tmp_path)
    (tmp_path / "model.pt").write_bytes(b"x")
    assert main(["model", "generate", str(tmp_path), "--prompt", "hi"]) == 2
    assert "pickle weights (model.pt)" in _one_error_line(capsys)


@pytest.mark.parametrize("config_text, problem", [
    ("[" * 100_000, "nesting deeper than 64 levels"),
    ("[]", "expected a JSON object, got list"),
])
@pytest.mark.parametrize("action", [["info"], ["generate", "--prompt", "hi"]])
def test_hostile_config_json_exits_2(action, config_text, problem, capsys, tmp_path, tiny_folder):
    """A model folder's config.json is user input too: deep nesting is an error, not a RecursionError."""
    shutil.copy(tiny_folder / "model.safetensors", tmp_path)
    (tmp_path / "config.json").write_text(config_text)
    assert main(["model", action[0], str(tmp_path), *action[1:]]) == 2
    line = _one_error_line(capsys)
    assert str(tmp_path / "config.json") in line and problem in line


def test_bad_max_new_tokens_exits_2(capsys):
    assert main(["model", "generate", "tiny-random-llama", "--prompt", "hi", "--max-new-tokens", "0"]) == 2
    assert "--max-new-tokens" in _one_error_line(capsys)


def test_info_prints_identity(capsys, tiny):
    assert main(["model", "info", "tiny-random-llama"]) == 0
    out = capsys.readouterr().out
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["name"] == "tiny-random-llama" and fields["kind"] == "builtin"
    assert fields["cache"] in {"hit", "built"}
    assert fields["layers"] == "2" and fields["vocab"] == "50259"
    assert fields["parameters"] == f"{sum(p.numel() for p in tiny[0].parameters()):,}"
    assert fields["dtype"].startswith("float32") and fields["chat template"] == "yes"
    assert main(["model", "info", "tiny-random-llama", "--json"]) == 0
    ident = json.loads(capsys.readouterr().out)
    assert ident["cache"] == "hit" and ident["weights_sha256"]["model.safetensors"]


def test_generate_prints_greedy_answer(capsys, tiny):
    from booster.models import answer

    assert main(["model", "generate", "tiny-random-llama", "--prompt", "Hello?", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    model, tok = tiny
    (expected,) = answer(model, tok, "Hello?", max_new_tokens=4)
    assert expected and out == expected + "\n"
