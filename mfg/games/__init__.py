"""The game catalogue: classic MFGs with the peers' definitions, plus Garnet games.

Bench-MFG's environments are the ``benchmfg_*`` games (``mfg.games.benchmfg``), MFAX's
the ``mfax_*`` ones (``mfg.games.mfax``).

``make(name, **params)`` builds any registered game; ``GAMES`` maps names to builders.
``size_of(name, **params)`` gives (S, A, T) without building anything, so that a size
that cannot fit in memory is refused before an allocation (``experiments.resources``).
"""

from __future__ import annotations

import inspect
from typing import Callable

from mfg.game import MeanFieldGame
from mfg.games.benchmfg import (
    benchmfg_contraction,
    benchmfg_four_rooms,
    benchmfg_kinetic_congestion,
    benchmfg_lasry_lions,
    benchmfg_mf_garnet,
    benchmfg_multiple_equilibria,
    benchmfg_no_interaction,
    benchmfg_rock_paper_scissors,
    benchmfg_sis,
)
from mfg.games.crowd import crowd_modelling, crowd_modelling_2d
from mfg.games.mfax import mfax_beach_bar, mfax_endogenous, mfax_linear_quadratic
from mfg.games.garnet import garnet
from mfg.games.linear_quadratic import linear_quadratic_openspiel
from mfg.games.predator_prey import predator_prey
from mfg.serverless.game import serverless
from mfg.games.mfglib_games import (
    beach_bar,
    building_evacuation,
    conservative_treasure_hunting,
    random_linear,
    crowd_motion,
    left_right,
    linear_quadratic,
    rock_paper_scissors,
    susceptible_infected,
)

GAMES: dict[str, Callable[..., MeanFieldGame]] = {
    "left_right": left_right,
    "rock_paper_scissors": rock_paper_scissors,
    "susceptible_infected": susceptible_infected,
    "beach_bar": beach_bar,
    "crowd_motion": crowd_motion,
    "linear_quadratic": linear_quadratic,
    "building_evacuation": building_evacuation,
    "conservative_treasure_hunting": conservative_treasure_hunting,
    "random_linear": random_linear,
    "crowd_modelling": crowd_modelling,
    "crowd_modelling_2d": crowd_modelling_2d,
    "linear_quadratic_openspiel": linear_quadratic_openspiel,
    "predator_prey": predator_prey,
    "serverless": serverless,
    "garnet": garnet,
    "benchmfg_contraction": benchmfg_contraction,
    "benchmfg_four_rooms": benchmfg_four_rooms,
    "benchmfg_kinetic_congestion": benchmfg_kinetic_congestion,
    "benchmfg_lasry_lions": benchmfg_lasry_lions,
    "benchmfg_mf_garnet": benchmfg_mf_garnet,
    "benchmfg_multiple_equilibria": benchmfg_multiple_equilibria,
    "benchmfg_no_interaction": benchmfg_no_interaction,
    "benchmfg_rock_paper_scissors": benchmfg_rock_paper_scissors,
    "benchmfg_sis": benchmfg_sis,
    "mfax_linear_quadratic": mfax_linear_quadratic,
    "mfax_beach_bar": mfax_beach_bar,
    "mfax_endogenous": mfax_endogenous,
}


# (S, A) of each game from its parameters (defaults filled in); tests/test_games.py checks
# them against the built games.
_SIZES: dict[str, Callable[[dict], tuple[int, int]]] = {
    "left_right": lambda p: (3, 2),
    "rock_paper_scissors": lambda p: (4, 3),
    "susceptible_infected": lambda p: (2, 2),
    "beach_bar": lambda p: (p["n"], 3),
    "crowd_motion": lambda p: (p["torus_l"] * p["torus_w"], 5),
    "linear_quadratic": lambda p: (2 * p["el"] + 1, 2 * p["m"] + 1),
    "building_evacuation": lambda p: (p["n_floor"] * p["floor_l"] * p["floor_w"], 6),
    "conservative_treasure_hunting": lambda p: (p["n"], p["n"]),
    "random_linear": lambda p: (p["n"], p["n"]),
    "crowd_modelling": lambda p: (p["size"], 3),
    "crowd_modelling_2d": lambda p: (p["size"] ** 2, 5),
    "linear_quadratic_openspiel": lambda p: (p["size"], 2 * p["actions_per_side"] + 1),
    "predator_prey": lambda p: (3 * p["size"] ** 2, 5),
    "serverless": lambda p: ((len(p["levels"]) if p["levels"] is not None else p["num_load_bins"] - 1)
                             * p["max_containers"] * p["max_cpu_steps"] * 3, 5),
    "garnet": lambda p: (p["num_states"], p["num_actions"]),
    "benchmfg_contraction": lambda p: (2, 2),
    "benchmfg_four_rooms": lambda p: (121, 5),
    "benchmfg_kinetic_congestion": lambda p: (p["height"] * p["width"], 5),
    "benchmfg_lasry_lions": lambda p: (p["num_states"], 3),
    "benchmfg_mf_garnet": lambda p: (p["num_states"], p["num_actions"]),
    "benchmfg_multiple_equilibria": lambda p: (p["num_states"], 3),
    "benchmfg_no_interaction": lambda p: (p["num_states"], 3),
    "benchmfg_rock_paper_scissors": lambda p: (3, 3),
    "benchmfg_sis": lambda p: (2, p["num_actions"]),
    "mfax_linear_quadratic": lambda p: (p["num_states"], len(p["actions"])),
    "mfax_beach_bar": lambda p: (p["num_states"], len(p["actions"])),
    "mfax_endogenous": lambda p: (p["wealth_states"] * p["income_states"], p["num_actions"]),
}


_FIXED_HORIZONS = {"left_right": 2}      # games without a horizon parameter


def size_of(name: str, **params) -> tuple[int, int, int | None]:
    """(S, A, horizon) of game ``name`` with ``params``, computed from the parameters alone.

    For the serverless game with a fitted load chain, S is a lower bound (a load bin that
    no minute falls in is dropped by the fit)."""
    if name not in GAMES:
        raise KeyError(f"unknown game {name!r}; known games: {', '.join(sorted(GAMES))}.")
    signature = inspect.signature(GAMES[name])
    full = {k: v.default for k, v in signature.parameters.items()} | params
    states, actions = _SIZES[name](full)
    return int(states), int(actions), full.get("horizon", _FIXED_HORIZONS.get(name))


def make(name: str, **params) -> MeanFieldGame:
    """Build the registered game ``name`` with keyword parameters."""
    if name not in GAMES:
        raise KeyError(f"unknown game {name!r}; known games: {', '.join(sorted(GAMES))}.")
    return GAMES[name](**params)


__all__ = ["GAMES", "make", "size_of", *GAMES]
