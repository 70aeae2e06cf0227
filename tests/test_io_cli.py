"""Atomic outputs and the CLI's one-line error contract."""

from __future__ import annotations

import os

import pytest

from booster import io
from booster.cli import main
from booster.errors import BoosterError


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "model"
    with io.atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with io.atomic_dir(target) as d:
            (d / "b").write_text("2")
            raise RuntimeError("boom")
    assert sorted(os.listdir(target)) == ["a"]
    with io.atomic_dir(target) as d:
        (d / "c").write_text("3")
    assert sorted(os.listdir(target)) == ["c"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_jsonl_round_trip_and_hash(tmp_path):
    recs = [{"messages": [{"role": "user", "content": "héllo"}]}, {"x": 1}]
    f = tmp_path / "r.jsonl"
    assert io.write_jsonl(f, recs) == 2
    assert io.read_jsonl(f) == recs
    assert io.sha256_file(f) == io.sha256_text(f.read_text(encoding="utf-8"))


def test_error_message_is_one_line():
    assert "\n" not in str(BoosterError("a\nb   c"))


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("booster: error:") and "no-such-command" in err[0]


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_written_files_and_folders_get_the_usual_modes_under_the_umask(tmp_path, umask, mask):
    umask(mask)
    io.write_json(tmp_path / "summary.json", {"a": 1})
    io.write_jsonl(tmp_path / "mix.jsonl", [{"x": 1}])
    with io.atomic_dir(tmp_path / "pools") as d:
        io.write_text(d / "a.jsonl", "{}\n")
    with io.atomic_dir(tmp_path / "pools") as d:  # replacing an existing folder, too
        io.write_text(d / "b.jsonl", "{}\n")
    for name in ("summary.json", "mix.jsonl", "pools/b.jsonl"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert (tmp_path / "pools").stat().st_mode & 0o777 == 0o777 & ~mask
    assert io.umask() == mask
    assert sorted(os.listdir(tmp_path)) == ["mix.jsonl", "pools", "summary.json"]  # no temporary left


def test_atomic_dir_replaces_an_existing_file(tmp_path):
    (tmp_path / "out").write_text("old")
    with io.atomic_dir(tmp_path / "out") as d:
        (d / "a").write_text("1")
    assert os.listdir(tmp_path / "out") == ["a"] and os.listdir(tmp_path) == ["out"]


def test_two_processes_writing_one_folder_both_succeed(tmp_path):
    """Two runs writing the same run folder (e.g. its ledger) at once: no 'Directory not empty'."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from booster import io\n"
            "for i in range(200):\n"
            "    with io.atomic_dir(sys.argv[1]) as d:\n"
            "        (d / sys.argv[2]).write_text(str(i))\n")
    src = str(Path(io.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ledger"), name], env=env,
                              stderr=subprocess.PIPE) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    assert os.listdir(tmp_path) == ["ledger"]  # nothing moved aside is left
    assert os.listdir(tmp_path / "ledger") in (["a"], ["b"])


def test_file_lock_reports_a_wait_and_excludes_other_processes(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    lock = tmp_path / "stage.lock"
    code = ("import sys; from booster import io\n"
            "with io.file_lock(sys.argv[1], on_wait=lambda: print('waiting', flush=True)):\n"
            "    print('got it', flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(io.__file__).resolve().parents[1])}
    with io.file_lock(lock):
        proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "waiting\n"  # blocked while this process holds it
    assert proc.stdout.readline() == "got it\n" and proc.wait(timeout=60) == 0
    # free again once released: no wait message
    done = subprocess.run([sys.executable, "-c", code, str(lock)], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout == "got it\n"


def test_error_naming_an_undecodable_file_name_is_still_one_line(tmp_path, capsys):
    # os.fsdecode turns the byte 0xff into a lone surrogate, which stderr cannot encode as is
    name = os.fsdecode(b"bad-\xff.jsonl")
    assert main(["data", "check", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("booster: error:") and "bad-" in err[0]


def test_broken_pipe_on_stdout_exits_quietly(tmp_path):
    import subprocess
    import sys

    # `booster run --describe | head -1`: the reader closes the pipe after one line
    proc = subprocess.run(f"{sys.executable} -m booster run --describe | head -1", shell=True,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
