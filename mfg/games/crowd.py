"""OpenSpiel's crowd modelling on a torus (Perrin et al. 2020, section 4.2), any size.

State x in Z_n (a ring of ``size`` cells); actions move -1 / 0 / +1; then a noise move
-1 / 0 / +1 with probability 1/3 each.  Reward at epoch t (decision epochs 0..T-1):

    r(x, a, mu_t) = 1 - |x - n//2| / (n//2) - log(mu_t(x) + 1e-25) - move_penalty |a| / n

Faithful form: the move penalty is charged at the step of the move.  OpenSpiel 2.0.2
charges the move of epoch t at epoch t+1 (the last move is never charged) and caches
values under an observation that omits that action; with ``move_penalty=0`` both agree
to 1e-14 (the peer golden values in tests/ use that setting).

``crowd_modelling_2d`` is OpenSpiel's 2D version on an n x n torus, walls included.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.games._common import combine_moves, grid_kernel, stationary_discount

__all__ = ["crowd_modelling", "crowd_modelling_2d", "legal_action_mask"]

OPENSPIEL_EPSILON = 1e-25


def _crowd_reward(params, t, mu):
    return params["base"] - jnp.log(mu + params["log_eps"])[:, None]


def crowd_modelling(
    size: int = 10, horizon: int | None = 10, move_penalty: float = 1.0, mu0=None,
    kernel: str = "shift", discount: float | None = None, dtype=None,
) -> MeanFieldGame:
    """1D crowd modelling (OpenSpiel ``mfg_crowd_modelling``), S = size, A = 3.

    ``horizon=None`` gives the stationary discounted game (discount 0.9 by default).
    """
    x = np.arange(size)
    half = size // 2
    moves = np.array([-1, 0, 1])
    base = (1.0 - np.abs(x - half) / half)[:, None] - move_penalty * np.abs(moves)[None, :] / size
    offsets, probs = combine_moves(moves, moves, [1 / 3, 1 / 3, 1 / 3])
    kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (size,), "torus")
    params = {"base": base, "log_eps": OPENSPIEL_EPSILON, **kernel_params}
    return make_game(
        name="crowd_modelling", num_states=size, num_actions=3, horizon=horizon,
        discount=stationary_discount(horizon, discount),
        reward_fn=_crowd_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(size, 1.0 / size) if mu0 is None else mu0,
        mean_field="state", dtype=dtype,
    )


# OpenSpiel's 2D action order: (dx, dy) for actions 0..4; action 2 is "stay".
MOVES_2D = ((0, -1), (-1, 0), (0, 0), (1, 0), (0, 1))
NEUTRAL_2D = 2


def crowd_modelling_2d(
    size: int = 10, horizon: int | None = 10, move_penalty: float = 1.0,
    only_distribution_reward: bool = False, forbidden_states=(), positional_reward=None,
    crowd_aversion_coef: float = 1.0, noise_intensity: float = 1.0, initial_distribution=None,
    kernel: str = "shift", discount: float | None = None, dtype=None,
) -> MeanFieldGame:
    """2D crowd modelling (OpenSpiel ``mfg_crowd_modelling_2d``) on a size x size torus.

    Cell (x, y) has index x * size + y.  Actions move by (0,-1), (-1,0), (0,0), (1,0), (0,1);
    a move into a forbidden cell (a wall) leaves the agent in place.  Then a noise move:
    each move that is legal from the new cell w.p. noise / n_legal, plus 1 - noise on
    staying.  Reward at each decision epoch:

        -coef log(mu(x, y) + 1e-25) + [unless only_distribution_reward]
        ( 2 - sum_i 2 v_i / size (|x - px_i| + |y - py_i|) - move_penalty |move|_1 / size )

    with positional targets ((px, py), v) (default the centre with v = 1).  ``horizon=None``
    gives the stationary discounted game (discount 0.9 by default).  OpenSpiel's
    maze and four-rooms settings use ``only_distribution_reward=True`` and
    ``forbidden_states``; its move penalty is charged one epoch late (see crowd_modelling).
    Actions into walls are unavailable in OpenSpiel; here they equal "stay"
    (``legal_action_mask`` gives OpenSpiel's action sets).
    """
    forbidden = {tuple(int(v) for v in xy) for xy in forbidden_states}
    x, y = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    x, y = x.ravel(), y.ravel()
    S = size * size
    targets = positional_reward or [((size // 2, size // 2), 1.0)]
    positional = np.full(S, 2.0)
    for (px, py), value in targets:
        positional -= 2.0 * value / size * (np.abs(x - px) + np.abs(y - py))
    moves = np.array(MOVES_2D)                                                       # [A, 2]
    wall = np.zeros(S, bool)
    for xi, yi in forbidden:
        wall[xi * size + yi] = True
    # Without walls every cell moves alike (a torus): work out the moves of cell 0 only,
    # so that building a 10^7-cell grid costs O(S), not O(S A D) floats.
    cells = np.arange(S) if forbidden else np.array([0])
    cx, cy = x[cells], y[cells]
    # cell reached by each move from each cell (on the torus), and whether it is a wall
    tx = (cx[:, None] + moves[None, :, 0]) % size
    ty = (cy[:, None] + moves[None, :, 1]) % size
    blocked = wall[tx * size + ty]                                                   # [C, A]
    taken = np.where(blocked, NEUTRAL_2D, np.arange(5)[None, :])                     # move made
    effective = moves[taken]                                                         # [C, A, 2]
    base = np.zeros((S, 5))
    if not only_distribution_reward:
        base = positional[:, None] - move_penalty * np.abs(effective).sum(-1) / size
    # noise from the cell reached after the move: each legal move w.p. noise / n_legal,
    # plus 1 - noise on staying; a wall cell (never reached by any mass) absorbs.
    landed_x = (cx[:, None] + effective[..., 0]) % size                               # [C, A]
    landed_y = (cy[:, None] + effective[..., 1]) % size
    legal = ~wall[((landed_x[..., None] + moves[:, 0]) % size) * size
                  + (landed_y[..., None] + moves[:, 1]) % size]                      # [C, A, E]
    share = noise_intensity / np.maximum(legal.sum(-1, keepdims=True), 1)
    weights = np.where(legal, share, 0.0)
    weights[..., NEUTRAL_2D] += 1.0 - noise_intensity
    absorbed = ~legal[..., NEUTRAL_2D]
    weights[absorbed] = np.eye(5)[NEUTRAL_2D]
    offsets = sorted({(a[0] + e[0], a[1] + e[1]) for a in MOVES_2D for e in MOVES_2D})
    index = {off: d for d, off in enumerate(offsets)}
    offset_of = np.array([[index[(a[0] + e[0], a[1] + e[1])] for e in MOVES_2D] for a in MOVES_2D])
    probs = np.zeros((len(cells), 5, len(offsets)))
    np.put_along_axis(probs, offset_of[taken], weights, axis=2)   # move + noise -> offset
    if not forbidden:  # every cell moves alike, so store probs once ([A, D])
        probs = probs[0]
    kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (size, size), "torus")
    params = {"base": base, "log_eps": OPENSPIEL_EPSILON, "coef": crowd_aversion_coef,
              "legal": np.broadcast_to((~blocked).astype(np.float64), (S, 5)), **kernel_params}
    if initial_distribution is None:
        mu0 = np.full(S, 1.0 / S)
    else:
        mu0 = np.zeros(S)
        for (xi, yi), value in initial_distribution:
            mu0[xi * size + yi] += value
    return make_game(
        name="crowd_modelling_2d", num_states=S, num_actions=5, horizon=horizon,
        discount=stationary_discount(horizon, discount),
        reward_fn=_crowd_2d_reward, transition_fn=transition_fn, params=params,
        initial_distribution=mu0, mean_field="state", state_shape=(size, size), dtype=dtype,
    )


def _crowd_2d_reward(params, t, mu):
    return params["base"] - params["coef"] * jnp.log(mu + params["log_eps"])[:, None]


def legal_action_mask(game: MeanFieldGame) -> jax.Array:
    """[S, A] 1.0 where OpenSpiel allows the action (no move into a wall), for 2D crowds."""
    return game.params["legal"]
