"""OpenSpiel's mean-field linear-quadratic game (``mean_field_lin_quad``), on a ring.

Positions x in Z_n, moves a in {-m..m} (m = ``actions_per_side``).  At epoch t, with
m_t = sum_x x mu_t(x) the population's mean position (OpenSpiel's convention, on 0..n-1):

    reward  r(x, a, mu_t) = dt/2 (-a^2 + 2 q a (m_t - x) - kappa (m_t - x)^2)
    move    x' = (x + round((a + K (m_t - x)) dt)) mod n
    noise   x'' = round(x' + e sqrt(dt) sigma) mod n,  e in {-m..m} with the Gaussian
            mass of [e - 1/2, e + 1/2] (tails folded onto the extreme outcomes)

and, if ``apply_terminal_cost``, -c (m_T - x)^2 / 2 added at the last epoch.

Differences from OpenSpiel 2.0.2, which the benchmark compares "as shipped": OpenSpiel
charges the action terms of epoch t at epoch t+1 (the last action is never charged) and
never applies its terminal cost (its terminal state is reached at a mean-field node,
whose reward is 0); its values are cached under "(x, t)", which omits that action.  Our
game charges each action when it is taken; ``apply_terminal_cost=False`` (the default)
matches OpenSpiel's omission of the terminal cost.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.games._common import combine_moves, grid_kernel
from mfg.transitions import SparseTransition

__all__ = ["linear_quadratic_openspiel"]


def _normal_cdf(x, scale):
    return 0.5 * (1.0 + math.erf(x / (scale * math.sqrt(2.0))))


def _noise_probs(actions_per_side: int, volatility: float) -> np.ndarray:
    e = np.arange(-actions_per_side, actions_per_side + 1)
    probs = np.array([_normal_cdf(v + 0.5, volatility) - _normal_cdf(v - 0.5, volatility) for v in e])
    probs[0] += _normal_cdf(e[0] - 0.5, volatility)
    probs[-1] += 1.0 - _normal_cdf(e[-1] + 0.5, volatility)
    return probs


def _mean_position(params, mu):
    return jnp.dot(params["positions"], mu)


def _lq_reward(params, t, mu):
    gap = _mean_position(params, mu) - params["positions"][:, None]       # m_t - x
    a = params["moves"][None, :]
    running = params["dt"] / 2 * (-(a**2) + 2 * params["cross_q"] * a * gap - params["kappa"] * gap**2)
    terminal = -params["terminal_cost"] * gap**2 / 2.0
    return running + jnp.where((t == params["last_epoch"]) & params["apply_terminal_cost"], terminal, 0.0)


def _lq_reverting_transition(params, t, mu):
    """Mean-reverting drift: successors depend on the mean field (K successors per pair)."""
    x = params["positions"][:, None, None]
    n = params["positions"].shape[0]
    gap = _mean_position(params, mu) - x
    drift = jnp.round((params["moves"][None, :, None] + params["mean_revert"] * gap) * params["dt"])
    moved = jnp.mod(x + drift, n)
    noisy = jnp.mod(jnp.round(moved + params["noise_shift"][None, None, :]), n)
    probs = jnp.broadcast_to(params["noise_probs"], noisy.shape)
    return SparseTransition(noisy.astype(jnp.int32), probs)


def linear_quadratic_openspiel(
    size: int = 10, horizon: int = 10, dt: float = 1.0, actions_per_side: int = 3,
    volatility: float = 1.0, mean_revert: float = 0.0, cross_q: float = 0.01,
    kappa: float = 0.5, terminal_cost: float = 1.0, apply_terminal_cost: bool = False,
    mu0=None, kernel: str = "shift", dtype=None,
) -> MeanFieldGame:
    """OpenSpiel's linear-quadratic MFG (defaults as OpenSpiel's); S = size, A = 2m+1.

    Without mean reversion the kernel is a fixed set of displacements on the ring, stored
    as ``kernel`` ("shift", "pull", "sparse" or "dense"); with mean reversion the
    successors move with the mean field and are computed each epoch (``kernel`` ignored).
    """
    if horizon <= 0 or size <= 0 or actions_per_side < 0:
        raise ValueError("size and horizon must be positive and actions_per_side >= 0.")
    moves = np.arange(-actions_per_side, actions_per_side + 1)
    noise = _noise_probs(actions_per_side, volatility)
    noise_shift = moves * math.sqrt(dt) * volatility
    params = {
        "positions": np.arange(size, dtype=np.float64), "moves": moves.astype(np.float64),
        "dt": dt, "cross_q": cross_q, "kappa": kappa, "terminal_cost": terminal_cost,
        "apply_terminal_cost": np.bool_(apply_terminal_cost), "last_epoch": np.int32(horizon - 1),
    }
    integral_noise = np.allclose(noise_shift, np.round(noise_shift))
    if mean_revert == 0.0 and integral_noise:
        step = np.round(moves * dt).astype(int)
        offsets, probs = combine_moves(step, np.round(noise_shift).astype(int), noise)
        kernel_params, transition_fn = grid_kernel(kernel, probs, offsets, (size,), "torus")
        params.update(kernel_params)
    else:
        params.update({"mean_revert": mean_revert, "noise_shift": noise_shift, "noise_probs": noise})
        transition_fn = _lq_reverting_transition
    return make_game(
        name="linear_quadratic_openspiel", num_states=size, num_actions=len(moves),
        horizon=horizon, reward_fn=_lq_reward, transition_fn=transition_fn, params=params,
        initial_distribution=np.full(size, 1.0 / size) if mu0 is None else mu0,
        mean_field="state", dtype=dtype,
    )
