"""A backend-neutral search space: plain dataclasses, validated on construction, no library imports.

Each backend turns a `SearchSpace` into its own library's vocabulary (one small function per
parameter kind) and hands the objective a ``dict`` of plain Python values (`SearchSpace.coerce`).
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class SpaceError(ValueError):
    """A search-space definition that cannot be searched."""


def _check_name(name: str) -> None:
    if not name or not name.isidentifier():
        raise SpaceError(f"parameter name {name!r} must be a Python identifier")


@dataclass(frozen=True)
class IntParam:
    """An integer in ``[low, high]``, both ends included."""

    name: str
    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        for end in ("low", "high"):
            value = getattr(self, end)
            if not _is_number(value) or not float(value).is_integer():
                raise SpaceError(f"{self.name}.{end} must be an integer, got {value!r}")
            object.__setattr__(self, end, int(value))
        if self.low > self.high:
            raise SpaceError(f"{self.name}: low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.name}: a log range needs low > 0, got low={self.low}")

    def coerce(self, value: Any) -> int:
        if isinstance(value, float) and not value.is_integer():
            value = round(value)
        return int(value)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True)
class FloatParam:
    """A float in ``[low, high]``; ``log=True`` samples it log-uniformly."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        for end in ("low", "high"):
            value = getattr(self, end)
            if not _is_number(value) or not math.isfinite(float(value)):
                raise SpaceError(f"{self.name}.{end} must be a finite number, got {value!r}")
            object.__setattr__(self, end, float(value))
        if self.low >= self.high:
            raise SpaceError(f"{self.name}: low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.name}: a log range needs low > 0, got low={self.low}")

    def coerce(self, value: Any) -> float:
        return float(value)

    def contains(self, value: Any) -> bool:
        return isinstance(value, float) and self.low <= value <= self.high


# The kinds of a categorical's choices: one a parameter (Keras Tuner's Choice holds one type).
_KIND_OF = {bool: "booleans", int: "integers", float: "floats", str: "strings"}


@dataclass(frozen=True)
class CategoricalParam:
    """One of a fixed list of choices (strings, ints, floats or bools)."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        _check_name(self.name)
        choices = tuple(self.choices)
        if not choices:
            raise SpaceError(f"{self.name}: choices must not be empty")
        odd = [c for c in choices if not isinstance(c, str | int | float)]
        if odd:  # (bool is an int)
            raise SpaceError(
                f"{self.name}: choices must be strings, numbers or booleans, which every library "
                f"can hold, got {odd[0]!r}"
            )
        kinds = sorted({_KIND_OF.get(type(c), "floats") for c in choices})
        if len(kinds) > 1:
            raise SpaceError(
                f"{self.name}: choices mix {' and '.join(kinds)} ({list(choices)}); Keras Tuner's "
                "Choice takes one type, and the others differ in what they return: make them all "
                "one kind (1.0 for a float, '1' for a string)"
            )
        if len(set(choices)) != len(choices):
            raise SpaceError(f"{self.name}: choices must be distinct, got {list(choices)}")
        object.__setattr__(self, "choices", choices)

    def coerce(self, value: Any) -> Any:
        # Libraries hand back numpy scalars (np.str_, np.int64): return the matching original.
        value = value.item() if hasattr(value, "item") else value
        for choice in self.choices:
            if choice == value and isinstance(value, bool) == isinstance(choice, bool):
                return choice
        raise SpaceError(f"{self.name}: {value!r} is not one of {list(self.choices)}")

    def contains(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)


Param = IntParam | FloatParam | CategoricalParam


@dataclass(frozen=True)
class SearchSpace:
    """An ordered collection of parameters with distinct names."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        params = tuple(self.params)
        if not params:
            raise SpaceError("a search space needs at least one parameter")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise SpaceError(f"parameter names must be distinct, got {names}")
        object.__setattr__(self, "params", params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def lowest(self) -> dict[str, Any]:
        """One configuration: each parameter at its lowest value, or its first choice."""
        return {
            p.name: p.choices[0] if isinstance(p, CategoricalParam) else p.low for p in self.params
        }

    def each_choice(self) -> list[dict[str, Any]]:
        """Configurations that hold every choice of every categorical parameter, each with the
        numeric parameters at their lowest and at their highest values (a choice may matter only
        where another parameter makes room for it: an activation with at least one hidden
        layer). The other categorical parameters keep their first choice."""
        configurations = []
        for end in ("low", "high"):
            base = {
                p.name: p.choices[0] if isinstance(p, CategoricalParam) else getattr(p, end)
                for p in self.params
            }
            configurations.append(base)
            configurations += [
                {**base, p.name: choice}
                for p in self.params
                if isinstance(p, CategoricalParam)
                for choice in p.choices[1:]
            ]
        # (every value is hashable: a choice that is not is refused when the space is made)
        return list({tuple(c.items()): c for c in configurations}.values())

    def coerce(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Turn a library's sample (numpy scalars, floats for ints...) into plain Python values."""
        missing = set(self.names) - set(values)
        if missing:
            raise SpaceError(f"sample lacks parameters {sorted(missing)}")
        return {p.name: p.coerce(values[p.name]) for p in self.params}

    def contains(self, values: Mapping[str, Any]) -> bool:
        return all(p.contains(values.get(p.name)) for p in self.params)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The space as a study file's ``[space]`` tables (`from_dict` reads it back)."""
        spec: dict[str, dict[str, Any]] = {}
        for p in self.params:
            if isinstance(p, CategoricalParam):
                spec[p.name] = {"type": "categorical", "choices": list(p.choices)}
            else:
                kind = "int" if isinstance(p, IntParam) else "float"
                spec[p.name] = {"type": kind, "low": p.low, "high": p.high, "log": p.log}
        return spec

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        """Build a space from ``{name: {"type": "int"|"float"|"categorical", ...}}`` (TOML tables)."""
        if not isinstance(spec, Mapping):
            raise SpaceError(f"space must be a table of parameters ([space.NAME]), got {spec!r}")
        params: list[Param] = []
        for name, entry in spec.items():
            if not isinstance(entry, Mapping):
                raise SpaceError(
                    f"space.{name} must be a table (type, low, high...), got {entry!r}"
                )
            entry = dict(entry)
            kind = entry.pop("type", None)
            if kind not in _KEYS:
                raise SpaceError(f"space.{name}.type must be one of {sorted(_KEYS)}, got {kind!r}")
            required, optional = _KEYS[kind]
            missing = [key for key in required if key not in entry]
            unknown = sorted(set(entry) - set(required) - set(optional))
            if missing or unknown:
                raise SpaceError(
                    f"space.{name} ({kind}): "
                    + (f"give {', '.join(missing)}" if missing else "")
                    + ("; " if missing and unknown else "")
                    + (f"unknown keys {unknown}" if unknown else "")
                    + f" (a {kind} takes {', '.join(required + optional)})"
                )
            if kind == "categorical" and not isinstance(entry["choices"], list | tuple):
                raise SpaceError(
                    f"space.{name}.choices must be a list, e.g. choices = [1, 2], got "
                    f"{entry['choices']!r}"
                )
            params.append(_BUILDERS[kind](name=name, **entry))
        return cls(tuple(params))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# Per parameter type, the keys a space entry must give and those it may give.
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "int": (("low", "high"), ("log",)),
    "float": (("low", "high"), ("log",)),
    "categorical": (("choices",), ()),
}
_BUILDERS: dict[str, Any] = {
    "int": IntParam,
    "float": FloatParam,
    "categorical": lambda name, choices: CategoricalParam(name, tuple(choices)),
}


def default_space() -> SearchSpace:
    """The book's space (ch. 10): ``n_hidden`` 0-3, ``n_neurons`` 1-99, log-uniform learning rate."""
    return SearchSpace(
        (
            IntParam("n_hidden", 0, 3),
            IntParam("n_neurons", 1, 99),
            FloatParam("learning_rate", 3e-4, 3e-2, log=True),
        )
    )


def default_grid() -> dict[str, list[Any]]:
    """The book's space, discretized for a table (`tuning tabulate`): depth 0-3, ten widths from
    1 to 99 (log-spaced, rounded), twelve learning rates from 3e-4 to 3e-2 (log-spaced)."""
    widths = sorted({int(round(99 ** (i / 9))) for i in range(10)})
    rates = [float(f"{3e-4 * 100 ** (i / 11):.6g}") for i in range(12)]
    return {"n_hidden": [0, 1, 2, 3], "n_neurons": widths, "learning_rate": rates}


def describe_space(space: SearchSpace) -> str:
    """One line per study report: ``name low-high (log)`` or ``name {choices}``, comma-separated."""
    parts = []
    for param in space:
        if isinstance(param, CategoricalParam):
            parts.append(f"{param.name} {list(param.choices)}")
        else:
            parts.append(
                f"{param.name} {param.low:g} to {param.high:g}" + (" (log)" if param.log else "")
            )
    return ", ".join(parts)


def nearest_on_grid(values: Sequence[Any], value: Any, *, log: bool) -> Any:
    """The element of ``values`` nearest to ``value`` (ties: the lower), in log where ``log``:
    how a proposal is snapped to a table's grid."""
    ordered = sorted(values)

    def scale(v: float) -> float:
        return math.log(v) if log and v > 0 else float(v)

    target = scale(value)
    i = bisect_left([scale(v) for v in ordered], target)
    candidates = ordered[max(0, i - 1) : i + 1]
    return min(candidates, key=lambda v: abs(scale(v) - target))
