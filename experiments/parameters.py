"""The parameters of games, solvers and feature maps, checked before anything is built.

A config's ``game.params``, ``solver.params`` and ``solver.features.params`` are free
mappings in the schema (``experiments.config``); this module checks them against what
they configure, so that a wrong value is refused with its name and the allowed range
before a builder, ``jit`` or an allocation sees it:

  * the name must be a parameter of the builder (games, features) or a field of the
    solver's dataclass; an unknown one is refused with the allowed names listed;
  * the type comes from the annotation: ``int`` is an integer and not a bool (YAML's
    ``true`` is a bool), ``float`` a finite number (an integer is accepted), ``bool`` a
    bool, ``str`` and ``Literal[...]`` a string of the allowed ones;
  * the range comes from ``RANGES`` below, by parameter name (shared by every game or
    solver that uses the name, with per-solver exceptions in ``SOLVER_RANGES``).

``check_game_params``, ``check_solver_params`` and ``check_feature_params`` return a
list of messages (empty when all is well); the schema turns them into its errors.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import typing
from typing import Any, Literal

__all__ = ["Range", "RANGES", "SOLVER_RANGES", "check_game_params", "check_solver_params", "check_feature_params",
           "describe_value"]


@dataclasses.dataclass(frozen=True)
class Range:
    """An interval ``low .. high`` (open or closed at each end); ``inf_ok``: +inf is allowed."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    inf_ok: bool = False

    def contains(self, x: float) -> bool:
        if math.isinf(x):
            return self.inf_ok and x > 0
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        elif self.low == -math.inf:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return text + (" (inf allowed)" if self.inf_ok else "")


POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)
STEP = Range(0, 1, low_open=True)              # (0, 1]: a step size or a mixing rate

# Ranges by parameter name (games, solvers and feature maps share the names).
RANGES: dict[str, Range] = {
    # sizes of games: at least one state, action, epoch
    **{name: AT_LEAST_ONE for name in (
        "horizon", "size", "n", "num_states", "num_actions", "branching", "n_floor", "floor_l", "floor_w",
        "torus_l", "torus_w", "loc_change_freq", "max_containers", "max_cpu_steps", "actions_per_side", "el")},
    "num_load_bins": Range(2),
    "seed": NON_NEGATIVE, "bar_loc": NON_NEGATIVE,
    "discount": Range(0, 1, low_open=True, high_open=True),
    "p_still": PROBABILITY, "noise_probability": PROBABILITY, "knee": STEP,
    **{name: POSITIVE for name in ("log_eps", "cpu_step", "service_rate_per_core", "slo", "capacity", "sigma",
                                   "dt", "peak_load", "evac_r")},
    **{name: NON_NEGATIVE for name in ("cold_start", "price", "w_util", "w_slo", "volatility", "contention")},
    # solvers (see each solver's docstring)
    "learning_rate": POSITIVE, "temperature": NON_NEGATIVE, "damping": STEP, "mean_field_rate": STEP,
    "mean_field_exponent": NON_NEGATIVE, "critic_rate": STEP, "radius": Range(0, low_open=True, inf_ok=True),
    "exploration": Range(0, 1, high_open=True), "ridge": NON_NEGATIVE,
    **{name: AT_LEAST_ONE for name in ("num_agents", "td_steps", "critic_steps", "actor_steps", "hidden")},
    "critic_optimizer_rate": POSITIVE, "actor_optimizer_rate": POSITIVE,
    # feature maps
    "centers_per_dim": AT_LEAST_ONE, "tiles_per_dim": AT_LEAST_ONE, "tilings": AT_LEAST_ONE, "width": POSITIVE,
}

# Per-solver exceptions to ``RANGES``, with the reason in the message.
SOLVER_RANGES: dict[str, dict[str, tuple[Range, str]]] = {
    "nac": {"temperature": (POSITIVE, "NAC computes the regularized equilibrium: lambda must be > 0 "
                                      "(for lambda = 0 use mirror_descent or fictitious_play)")},
    "neural_nac": {"temperature": (POSITIVE, "neural NAC computes the regularized equilibrium: lambda must be > 0 "
                                             "(for lambda = 0 use mirror_descent or fictitious_play)")},
    "fixed_point": {"temperature": (POSITIVE, "the fixed point of the best response cycles at lambda = 0; "
                                              "lambda must be > 0 (for lambda = 0 use fictitious_play)")},
    "fictitious_play": {"learning_rate": (Range(0, 1), "0 is the harmonic average 1/(k+2), otherwise a "
                                                       "constant mixing rate in (0, 1]")},
}

_CHOICES = {"tie_break": ("uniform", "first"), "kernel": None}   # None: the builder checks


def describe_value(value: Any) -> str:
    """``value`` as an error message shows it: repr and, for surprising types, the type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, bool) or isinstance(value, str):
        return f"{text} ({type(value).__name__})"
    return text


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_type(name: str, annotation, value) -> str | None:
    """A message when ``value`` does not have the annotated type, else None."""
    if isinstance(annotation, str):                   # "int", "float | None", "int | Sequence[int]"
        kinds = {part.strip() for part in annotation.split("|")}
    else:
        origin = typing.get_origin(annotation)
        if origin is Literal:
            allowed = typing.get_args(annotation)
            return None if value in allowed and isinstance(value, str) else \
                f"must be one of {', '.join(map(repr, allowed))}, got {describe_value(value)}"
        if origin is tuple:
            kinds = {"ints"}
        elif annotation in (int, float, bool, str):
            kinds = {annotation.__name__}
        else:
            return None
    if value is None:
        return None if "None" in kinds else "must not be null (None)"
    if "Any" in kinds or not kinds & {"int", "float", "bool", "str", "ints", "Sequence[int]"}:
        return None
    if "bool" in kinds and isinstance(value, bool):
        return None
    if "int" in kinds and _is_int(value):
        return None
    if "float" in kinds and _is_real(value):
        return None if math.isfinite(value) or value == math.inf else f"must be a finite number, got {value!r}"
    if "str" in kinds and isinstance(value, str):
        return None
    if kinds & {"ints", "Sequence[int]"} and isinstance(value, (list, tuple)) and value \
            and all(_is_int(v) for v in value):
        return None
    wanted = " or ".join(sorted({"int": "an integer", "float": "a number", "bool": "true or false",
                                 "str": "a string", "ints": "a non-empty list of integers",
                                 "Sequence[int]": "a non-empty list of integers", "None": "null"}[k]
                                for k in kinds if k in ("int", "float", "bool", "str", "ints", "Sequence[int]", "None")))
    return f"must be {wanted}, got {describe_value(value)}"


def _check_range(name: str, value, rule: Range, reason: str | None = None) -> str | None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if _is_real(v) and not rule.contains(float(v)):
            return reason + f"; got {v!r}" if reason else f"must be {rule}, got {v!r}"
    return None


def _check(where: str, params: dict, annotations: dict[str, Any], overrides: dict[str, tuple[Range, str]] | None = None
           ) -> list[str]:
    errors = []
    unknown = sorted(set(params) - set(annotations))
    if unknown:
        errors.append(f"unknown parameter(s) {unknown} of {where}; allowed: {', '.join(annotations)}")
    for name, value in params.items():
        if name not in annotations:
            continue
        message = _check_type(name, annotations[name], value)
        if message is None and value is not None:
            rule, reason = (overrides or {}).get(name, (RANGES.get(name), None))
            if rule is not None:
                message = _check_range(name, value, rule, reason)
            choices = _CHOICES.get(name)
            if message is None and choices and value not in choices:
                message = f"must be one of {', '.join(map(repr, choices))}, got {describe_value(value)}"
        if message:
            errors.append(f"{name}: {message}")
    return errors


def _builder_annotations(fn) -> dict[str, Any]:
    return {p.name: (p.annotation if p.annotation is not inspect.Parameter.empty else "Any")
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("self", "dtype", "game")}


def check_game_params(name: str, params: dict) -> list[str]:
    """Messages for the ``params`` of game ``name`` that its builder would not accept."""
    from mfg.games import GAMES

    return _check(f"game {name!r}", params, _builder_annotations(GAMES[name]))


def solver_annotations(name: str) -> dict[str, Any]:
    """Field -> type of solver ``name``'s dataclass (feature maps and inputs excluded)."""
    from solvers import SOLVERS

    cls = SOLVERS[name]
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the strings
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.name not in ("features", "inputs")}


def check_solver_params(name: str, params: dict) -> list[str]:
    """Messages for the hyper-parameters of solver ``name`` that are unknown or out of range."""
    errors = _check(f"solver {name!r}", params, solver_annotations(name), SOLVER_RANGES.get(name))
    if "mean_field_solve" in params and "mean_field_solve" in solver_annotations(name):
        from mfg.oracles import MeanFieldSolve

        try:
            MeanFieldSolve.of(params["mean_field_solve"])
        except (TypeError, ValueError) as err:
            errors.append(f"mean_field_solve: {err}")
    return errors


def check_feature_params(kind: str, params: dict) -> list[str]:
    """Messages for the parameters of feature map ``kind`` (``mfg.features.FEATURES``)."""
    from mfg.features import FEATURES

    return _check(f"features {kind!r}", params, _builder_annotations(FEATURES[kind]))
