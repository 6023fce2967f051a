"""The factory of a real study that certifies a table (`tuning.run.certify`): each proposal is
snapped to the table's grid before it is built, so that a real study and a tabular one differ
only by training noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tuning.core.space import nearest_on_grid
from tuning.evaluation.keras.factory import load_factory, offered_arguments


def snap_to_grid(
    params: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], log: Sequence[str] = ()
) -> dict[str, Any]:
    """``params`` with each gridded number moved to the grid's nearest value (in log for the
    names in ``log``), as a tabular study snaps its proposals; other arguments unchanged."""
    snapped = dict(params)
    for name, values in grid.items():
        value = params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            snapped[name] = nearest_on_grid(values, value, log=name in log)
    return snapped


def build_on_grid(
    *,
    grid: Mapping[str, Sequence[Any]],
    log: Sequence[str] = (),
    grid_model: str | None = None,
    table: str | None = None,
    **arguments: Any,
) -> Any:
    """A model factory: the table's own factory (``grid_model``; the book's by default)
    building the ``grid`` configuration nearest to ``arguments`` (the searched values; the
    harness's own arguments pass through). ``log``: the parameters snapped in log; ``table``:
    the folder the grid is the table of (kept in the study's settings, not read here)."""
    factory = load_factory(grid_model)
    snapped = snap_to_grid(arguments, grid, log)
    searched = {k: v for k, v in snapped.items() if k in grid}
    others = offered_arguments(factory, {k: v for k, v in snapped.items() if k not in grid})
    return factory(**searched, **others)
