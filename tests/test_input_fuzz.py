"""Property tests: whatever a user's JSONL file or ``data mix`` arguments hold, the CLI either
succeeds (exit 0) or prints exactly one ``booster: error:`` line (exit 2), never a traceback.

Examples are bounded (and the deadline catches work that grows out of proportion with the
input) so the file runs in seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booster.cli import main
from booster.data.userdata import ROLES, load_user_jsonl

SETTINGS = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow])

# -- what a line of a user's file can hold --------------------------------------------------------

KEYS = st.sampled_from(["messages", "prompt", "completion", "role", "content", "harmful", ""]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=20) | st.sampled_from([*ROLES, "bot", " ", "\u2028"]))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=4),
                    max_leaves=20)
MESSAGE = st.fixed_dictionaries({}, optional={"role": JSON | st.sampled_from(ROLES), "content": JSON, "extra": JSON})
RECORD = (st.fixed_dictionaries({}, optional={"messages": st.lists(MESSAGE, max_size=4) | JSON,
                                              "prompt": JSON, "completion": JSON, "harmful": JSON})
          | st.fixed_dictionaries({"prompt": st.text(max_size=20), "completion": st.text(max_size=20)}))


# Plausible records (valid more often than not) so that the checks past the JSON syntax run.
TEXT = st.text(min_size=1, max_size=20)
CHAT = st.lists(st.fixed_dictionaries({"role": st.sampled_from(ROLES), "content": TEXT}), min_size=1, max_size=4)
PLAUSIBLE = st.one_of(
    st.fixed_dictionaries({"messages": CHAT}, optional={"harmful": st.booleans()}),
    st.fixed_dictionaries({"prompt": TEXT, "completion": TEXT}, optional={"harmful": JSON}),
    st.fixed_dictionaries({"messages": st.lists(MESSAGE | CHAT.map(lambda c: c[0]), min_size=1, max_size=4)}),
)


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # NaN/Infinity as json writes them


LINE = st.one_of(
    RECORD.map(_dumps),
    JSON.map(_dumps),
    st.tuples(RECORD.map(_dumps), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),  # truncated
    st.text(max_size=60),  # any unicode, surrogates included (encoded with surrogatepass below)
    st.integers(1, 20_000).map(lambda n: "[" * n),  # deep nesting
    st.integers(1, 500).map(lambda n: '{"messages": ' * n + "[]" + "}" * n),
    st.integers(4000, 6000).map(lambda n: '{"prompt": "p", "completion": "c", "n": ' + "9" * n + "}"),
    st.sampled_from(["NaN", "null", "-Infinity", "{}", "[]", '"str"', "\ufeff{}", "\x00", "\r", " \t "]),
)


@st.composite
def user_files(draw) -> bytes:
    lines = draw(st.lists(PLAUSIBLE.map(_dumps), max_size=4))
    for line in draw(st.lists(LINE, max_size=2)):  # hostile lines at random places
        lines.insert(draw(st.integers(0, len(lines))), line)
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    data = text.encode("utf-8", "surrogatepass")  # lone surrogates become invalid UTF-8 bytes
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 3)) == 0:  # arbitrary bytes somewhere: non-UTF-8, NUL, stray CR
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    return data


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)  # any exception other than a user error fails the test here
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(code: int, out: str, err: str) -> None:
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("booster: error: "), err
    assert len(lines[0]) < 1000, "an error line quotes too much of the input"


@SETTINGS
@given(user_files())
def test_data_check_any_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "user.jsonl"
        path.write_bytes(data)
        code, out, err = run_cli(["data", "check", str(path)])
        if code == 0:
            assert err == "" and out.startswith(f"{path}: ok, ")
            records = load_user_jsonl(path)  # agrees with the CLI: valid, every record has an answer
            assert records and all(any(m["role"] == "assistant" for m in r["messages"]) for r in records)
        else:
            assert_one_error_line(code, out, err)
            assert str(path) in err


ARG = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["0", "1", "-1", "0.5", "nan", "inf", "-inf", "1e-4", "1" * 40, "sst2", "agnews", "gsm8k", ""])


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(task=ARG, n=ARG, p=ARG, seed=ARG)
def test_data_mix_any_arguments(task, n, p, seed):
    """``data mix`` validates its arguments, then needs prepared pools: with none, every
    combination is a one-line error and nothing is written."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mix.jsonl"
        code, stdout, stderr = run_cli(["data", "mix", f"--data={tmp}", f"--task={task}", f"--n={n}",
                                        f"--p={p}", f"--seed={seed}", f"--out={out}"])
        assert_one_error_line(code, stdout, stderr)
        assert list(Path(tmp).iterdir()) == []  # nothing written, not even a temp file
