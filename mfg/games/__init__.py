"""The game catalogue: classic MFGs with the peers' definitions, plus Garnet games.

``make(name, **params)`` builds any registered game; ``GAMES`` maps names to builders.
"""

from __future__ import annotations

from typing import Callable

from mfg.game import MeanFieldGame
from mfg.games.crowd import crowd_modelling, crowd_modelling_2d
from mfg.games.garnet import garnet
from mfg.games.linear_quadratic import linear_quadratic_openspiel
from mfg.games.predator_prey import predator_prey
from mfg.games.serverless import serverless
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
}


def make(name: str, **params) -> MeanFieldGame:
    """Build the registered game ``name`` with keyword parameters."""
    if name not in GAMES:
        raise KeyError(f"unknown game {name!r}; known games: {', '.join(sorted(GAMES))}.")
    return GAMES[name](**params)


__all__ = ["GAMES", "make", *GAMES]
