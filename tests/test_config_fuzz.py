"""Property: any config document or override is a valid config or one ConfigError line, never
another exception. Documents mix the real keys (with wrong-typed values) and random ones."""

from __future__ import annotations

import io
import json
import tempfile
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booster.cli import main
from booster.config import describe, load_config
from booster.errors import ConfigError
from booster.pipeline.config import ExperimentConfig

LEAVES = [key for key, _, _ in describe(ExperimentConfig)]
SECTIONS = sorted({key.rsplit(".", 1)[0] for key in LEAVES if "." in key})
KEYS = st.sampled_from(LEAVES + SECTIONS) | st.text(max_size=12)

SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["1e-4", ".5", "no", "sft", "sst2", "{name}", "-1", "bf16"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


def nested(flat: dict) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}}: random values land inside the real sections."""
    out: dict = {}
    for key, value in flat.items():
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[parts[-1]] = value
    return out


DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=6).map(nested)
BASE = {"model": "smollm2-135m-instruct", "methods": ["sft"]}
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def check_outcome(load) -> None:
    try:
        load()
    except ConfigError as e:
        assert "\n" not in str(e) and len(str(e)) < 600


def write(text: str) -> Path:
    # hypothesis runs many examples per test: a fresh file each, outside pytest's tmp_path fixture
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8")
    with f:
        f.write(text)
    return Path(f.name)


@FUZZ
@given(doc=DOCUMENTS, with_base=st.booleans(), as_json=st.booleans())
def test_any_document_is_a_config_or_one_error_line(doc, with_base, as_json):
    doc = {**BASE, **doc} if with_base else doc
    text = json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc, allow_unicode=True)
    path = write(text)
    try:
        check_outcome(lambda: load_config(ExperimentConfig, path))
    finally:
        path.unlink()


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_file_is_a_config_or_one_error_line(text):
    path = write(text)
    try:
        check_outcome(lambda: load_config(ExperimentConfig, path))
    finally:
        path.unlink()


OVERRIDE_VALUES = st.text(max_size=30) | SCALARS.map(str) | VALUES.map(lambda v: yaml.safe_dump(
    v, default_flow_style=True).strip())


@FUZZ
@given(overrides=st.lists(st.tuples(KEYS, OVERRIDE_VALUES).map("=".join) | st.text(max_size=20), max_size=5))
def test_any_override_is_a_config_or_one_error_line(overrides):
    path = write(yaml.safe_dump(BASE))
    try:
        check_outcome(lambda: load_config(ExperimentConfig, path, overrides))
    finally:
        path.unlink()


class _Loaded(Exception):
    """Raised instead of preparing data: the config got through loading and validation."""


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCUMENTS, with_base=st.booleans())
def test_run_check_exits_2_with_one_line_or_gets_past_the_config(doc, with_base):
    """`booster run FILE --check` up to the data work, which is stubbed out (it prepares pools)."""
    path = write(yaml.safe_dump({**BASE, **doc} if with_base else doc, allow_unicode=True))
    stderr = io.StringIO()
    try:
        with mock.patch("booster.pipeline.grid.ensure_data", side_effect=_Loaded), redirect_stderr(stderr):
            code = main(["run", str(path), "--check"])
    except _Loaded:
        return
    finally:
        path.unlink()
    err = stderr.getvalue()
    assert code == 2 and err.startswith("booster: error: ") and err.count("\n") == 1
