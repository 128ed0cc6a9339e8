"""OpenSpiel's crowd modelling on a torus (Perrin et al. 2020, section 4.2), any size.

State x in Z_n (a ring of ``size`` cells); actions move -1 / 0 / +1; then a noise move
-1 / 0 / +1 with probability 1/3 each.  Reward at epoch t (decision epochs 0..T-1):

    r(x, a, mu_t) = 1 - |x - n//2| / (n//2) - log(mu_t(x) + 1e-25) - move_penalty |a| / n

Faithful form: the move penalty is charged at the step of the move.  OpenSpiel 2.0.2
charges the move of epoch t at epoch t+1 (the last move is never charged) and caches
values under an observation that omits that action; with ``move_penalty=0`` both agree
to 1e-14 (the peer golden values in tests/ use that setting).

``crowd_modelling_2d`` is the same game on an n x n torus with 5 actions
(stay, right, left, up, down) and noise in the same 5 moves; maze walls are not modelled.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.games._common import combine_moves, grid_kernel

__all__ = ["crowd_modelling", "crowd_modelling_2d"]

OPENSPIEL_EPSILON = 1e-25


def _crowd_reward(params, t, mu):
    return params["base"] - jnp.log(mu + params["log_eps"])[:, None]


def crowd_modelling(
    size: int = 10, horizon: int = 10, move_penalty: float = 1.0, mu0=None,
    kernel: str = "shift", dtype=None,
) -> MeanFieldGame:
    """1D crowd modelling (OpenSpiel ``mfg_crowd_modelling``), S = size, A = 3."""
    x = np.arange(size)
    half = size // 2
    moves = np.array([-1, 0, 1])
    base = (1.0 - np.abs(x - half) / half)[:, None] - move_penalty * np.abs(moves)[None, :] / size
    offsets, probs = combine_moves(moves, moves, [1 / 3, 1 / 3, 1 / 3])
    kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (size,), "torus")
    params = {"base": base, "log_eps": OPENSPIEL_EPSILON, **kernel_params}
    return make_game(
        name="crowd_modelling", num_states=size, num_actions=3, horizon=horizon,
        reward_fn=_crowd_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(size, 1.0 / size) if mu0 is None else mu0,
        mean_field="state", dtype=dtype,
    )


def crowd_modelling_2d(
    size: int = 10, horizon: int = 10, move_penalty: float = 1.0, mu0=None,
    kernel: str = "shift", dtype=None,
) -> MeanFieldGame:
    """2D crowd modelling on a size x size torus, S = size^2, A = 5, K = 5 noise moves.

    Reward 1 - (|x - n//2| + |y - n//2|) / (2 (n//2)) - log(mu(x, y)) - penalty |a|_1 / n.
    """
    half = size // 2
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    i, j = i.ravel(), j.ravel()
    moves = np.array([(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)])
    closeness = 1.0 - (np.abs(i - half) + np.abs(j - half)) / (2 * half)
    base = closeness[:, None] - move_penalty * np.abs(moves).sum(1)[None, :] / size
    offsets, probs = combine_moves(moves, moves, [0.2] * 5)
    kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (size, size), "torus")
    params = {"base": base, "log_eps": OPENSPIEL_EPSILON, **kernel_params}
    S = size * size
    return make_game(
        name="crowd_modelling_2d", num_states=S, num_actions=5, horizon=horizon,
        reward_fn=_crowd_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(S, 1.0 / S) if mu0 is None else mu0,
        mean_field="state", state_shape=(size, size), dtype=dtype,
    )
