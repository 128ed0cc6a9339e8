"""From a validated config to the objects it describes: the game and the solver.

Shared by the runner (``experiments.runner``) and the serverless comparison
(``experiments.serverless``, which trains independent RL on the game without
contention), so that neither imports the other.
"""

from __future__ import annotations

from experiments.config import ExperimentConfig

__all__ = ["build_game", "build_solver"]


def build_game(config: ExperimentConfig):
    """The game of ``config.game`` (a builder's refusal becomes a ValueError naming the game)."""
    from mfg import games

    try:
        return games.make(config.game.name, **config.game.params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"game {config.game.name!r} with params {config.game.params}: {err}") from None


def build_solver(config: ExperimentConfig, game):
    """The solver of ``config.solver`` for ``game``, its feature map built first."""
    from mfg import features
    from solvers import SOLVERS

    params = dict(config.solver.params)
    try:
        if config.solver.features is not None:
            params["features"] = features.make_features(game, config.solver.features.kind,
                                                        **config.solver.features.params)
        return SOLVERS[config.solver.name](**params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"solver {config.solver.name!r} with params {config.solver.params}: {err}") from None
