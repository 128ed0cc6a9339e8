"""mfg: mean-field games as arrays and pure functions, with exact tabular oracles.

The model layer of the library: games (``MeanFieldGame``, ``make_game``, the catalogue in
``mfg.games``), transition operators (``mfg.transitions``) and exact oracles
(``mfg.oracles``), feature maps for function approximation (``mfg.features``), sampling
primitives for simulated agents (``mfg.sampling``) and the finite N-player game of any
mean-field game (``mfg.nplayer``).  Solvers live in the sibling package ``solvers``; the
serverless application (its game, cluster model, simulators, autoscalers and platform
adapters) lives in ``mfg.serverless``.
"""

from mfg import features, games, oracles, transitions
from mfg.game import GameValidationError, MeanFieldGame, make_game, uniform_policy
from mfg.oracles import Exploitability, exploitability, induced_mean_field

__version__ = "0.1.0"

__all__ = [
    "GameValidationError",
    "MeanFieldGame",
    "make_game",
    "uniform_policy",
    "Exploitability",
    "exploitability",
    "induced_mean_field",
    "features",
    "games",
    "oracles",
    "transitions",
    "__version__",
]
