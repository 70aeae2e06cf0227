"""The pipeline stays made of small recipes: no function in booster/pipeline runs over 60 lines
(issue 13: the 356-line ``Stages`` class and the 109-line grid function were split so that each
stage kind reads top to bottom on one screen)."""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "src" / "booster" / "pipeline"
LIMIT = 60


def test_no_function_in_the_pipeline_is_over_60_lines():
    long = []
    for path in sorted(PIPELINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > LIMIT:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({n} lines)")
    assert len(list(PIPELINE.glob("*.py"))) > 5 and long == []
