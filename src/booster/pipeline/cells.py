"""The grid's cells: every attacked run an experiment config asks for."""

from __future__ import annotations

from booster.data.attacks import cell_p
from booster.pipeline.attack import Cell
from booster.pipeline.config import ExperimentConfig


def plan(cfg: ExperimentConfig) -> list[tuple]:
    """Every attacked run: (method, task, n, p, seed, recipe): the main product, then each
    ``attack.extra`` sub-grid (its missing keys taken from the main grid), without repeats. A
    recipe that fixes p (every one but task_mix) runs at its own p whatever ``ps`` says."""
    a = cfg.attack
    cells = [(m, t, n, cell_p(a.recipe, p), s, a.recipe)
             for m in cfg.methods for t in a.tasks for n in a.ns for p in a.ps for s in a.seeds]
    for x in a.extra:
        r = x.recipe or a.recipe
        cells += [(m, t, n, cell_p(r, p), s, r) for m in x.methods or cfg.methods for t in x.tasks or a.tasks
                  for n in x.ns or a.ns for p in x.ps or a.ps for s in x.seeds or a.seeds]
    return list(dict.fromkeys(cells))


def grid_tasks(cells: list[tuple]) -> list[str]:
    return list(dict.fromkeys(c[1] for c in cells))


def method_cells(cells: list[tuple], method: str) -> dict[str, list[Cell]]:
    """One method's attacked runs, by user task (in plan order)."""
    out: dict[str, list[Cell]] = {}
    for m, task, n, p, seed, recipe in cells:
        if m == method:
            out.setdefault(task, []).append(Cell(task, n, p, seed, recipe))
    return out
