"""The symmetric N-player game of a mean-field game, and how good a mean-field policy is in it.

A mean-field equilibrium is used because it is an approximate Nash equilibrium of the game
with N real players.  This package takes any ``MeanFieldGame`` to that game and measures
the N-player exploitability of a mean-field policy:

* ``mfg.nplayer.exact``: dynamic programming over (own state, counts of the others), exact
  for small games (``exact_exploitability``, ``exact_size``);
* ``mfg.nplayer.sampled``: N simulated players for any size, with a lower bound on the
  deviation gain from a given deviation and an upper bound from a deviator that sees the
  realized population (``sampled_exploitability``);
* ``mfg.nplayer.game``: the definitions shared by both (``marginal_game``,
  ``mean_field_best_response``).

Definitions and methods: docs/nplayer.md.
"""

from mfg.nplayer.exact import ExactTooLarge, NPlayerExploitability, exact_exploitability, exact_size
from mfg.nplayer.game import marginal_game, mean_field_best_response
from mfg.nplayer.sampled import Estimate, SampledExploitability, sampled_exploitability

__all__ = [
    "ExactTooLarge",
    "NPlayerExploitability",
    "exact_exploitability",
    "exact_size",
    "marginal_game",
    "mean_field_best_response",
    "Estimate",
    "SampledExploitability",
    "sampled_exploitability",
]
