"""MFAX's environments (repository CWibault/mfax, source only), with its definitions and defaults.

MFAX states a game as a deterministic individual step plus idiosyncratic noise atoms, and
its push-forward wrappers give, per (state, action), a short list of successors with
probabilities: this library's ``SparseTransition``.  Its episodes are finite
(``max_steps_in_episode`` = 30 decisions, t = 0..29), discounted by the algorithm's
``discount_factor`` (0.99 in every shipped config); exploitability weights the returns by
mu_0, as here.

Two features need care:

* rewards read the *next* aggregate state (linear-quadratic: the next mean position
  m_{t+1}).  Without common noise m_{t+1} is a function of L_t, so these games use the
  state-action mean field and compute m_{t+1} = mean(push(P_t, L_t)) inside the reward;
* the last decision (t = 29) earns MFAX's terminal reward instead of the step reward.

Ported with common noise off (MFAX's environment default; its training configs switch it
on, which makes the mean-field flow random: a common-noise game, not modelled by
``MeanFieldGame``).  Not ported: the macroeconomics model (``endogenous``), whose default
has common noise (aggregate productivity) and continuous wealth interpolated on a grid.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.transitions import SparseTransition, push_forward

__all__ = ["mfax_linear_quadratic", "mfax_beach_bar", "MFAX_HORIZON", "MFAX_DISCOUNT"]

MFAX_HORIZON = 30       # max_steps_in_episode of both toy games
MFAX_DISCOUNT = 0.99    # discount_factor of every shipped config


def _static_sparse(params, t, joint):
    del t, joint
    return SparseTransition(params["next_state"], params["probs"])


# ----------------------------------------------------------------------- linear-quadratic

def _next_mean(params, joint):
    """m_{t+1} = sum_s s push(P, L_t)(s): the next mean position (no common noise)."""
    mu_next = push_forward(_static_sparse(params, None, None), joint)
    return jnp.dot(mu_next, jnp.arange(joint.shape[0], dtype=joint.dtype))


def _lq_reward(params, t, joint):
    gap = _next_mean(params, joint) - jnp.arange(joint.shape[0], dtype=joint.dtype)     # m_{t+1} - s
    a = params["actions"]
    step = (-params["c_action"] * a[None, :] ** 2 + params["q"] * a[None, :] * gap[:, None]
            - 0.5 * params["kappa"] * gap[:, None] ** 2)
    terminal = jnp.broadcast_to(-0.5 * params["c_term"] * gap[:, None] ** 2, step.shape)
    return jnp.where(t >= params["horizon"] - 1, terminal, step)


def _float32_gaussian_weights(atoms_per_side: int) -> np.ndarray:
    """MFAX's noise weights, computed (as it does) in float32: pdf(k) / sum, k = -n..n."""
    k = np.arange(-atoms_per_side, atoms_per_side + 1, dtype=np.float32)
    pdf = np.exp(np.float32(-0.5) * k ** 2) / np.sqrt(np.float32(2.0 * np.pi))
    return (pdf / pdf.sum()).astype(np.float32).astype(np.float64)


def mfax_linear_quadratic(num_states: int = 99, actions=(-3, -2, -1, 0, 1, 2, 3), kappa: float = 0.5,
                          c_action: float = 0.5, q: float = 0.1, c_term: float = 1.0, sigma: float = 1.0,
                          rho: float = 0.5, atoms_per_side: int = 3, idio_noise: bool = True,
                          horizon: int = MFAX_HORIZON, discount: float = MFAX_DISCOUNT,
                          dtype=None) -> MeanFieldGame:
    """MFAX's linear-quadratic game (Perrin et al. 2020, Wu et al. 2025 parameters):

        x' = clip(round(x + a + sigma sqrt(1 - rho^2) k), 0, S - 1),  k ~ N(0, 1) on -3..3,
        r_t = -c_a a^2 + q a (m_{t+1} - x) - kappa/2 (m_{t+1} - x)^2,   t < T - 1,
        r_{T-1} = -c_term/2 (m_T - x)^2,

    m the mean position; S = 99 states, 7 actions, T = 30 decisions, gamma = 0.99.  The
    noise weights are MFAX's, rounded to float32 as it computes them.
    """
    actions = np.asarray(actions, np.float64)
    x = np.arange(num_states)[:, None, None]
    deterministic = np.clip(x + actions[None, :, None], 0, num_states - 1)
    atoms = np.arange(-atoms_per_side, atoms_per_side + 1, dtype=np.float32)
    scale = np.float32(sigma) * np.sqrt(np.float32(1.0 - rho ** 2))
    noisy = np.clip(np.round(deterministic + (scale * atoms).astype(np.float64)[None, None, :]), 0, num_states - 1)
    weights = _float32_gaussian_weights(atoms_per_side) if idio_noise else np.zeros(2 * atoms_per_side + 1)
    next_state = np.concatenate([noisy, deterministic], axis=-1).astype(np.int32)     # MFAX appends the
    probs = np.concatenate([weights, [0.0 if idio_noise else 1.0]])                    # noiseless move
    probs = np.broadcast_to(probs / probs.sum(), next_state.shape).copy()
    params = {"next_state": next_state, "probs": probs, "actions": actions, "kappa": kappa,
              "c_action": c_action, "q": q, "c_term": c_term, "horizon": np.int32(horizon)}
    return make_game(name="mfax_linear_quadratic", num_states=num_states, num_actions=len(actions),
                     horizon=horizon, discount=discount, reward_fn=_lq_reward, transition_fn=_static_sparse,
                     params=params, initial_distribution=np.full(num_states, 1.0 / num_states),
                     mean_field="state_action", dtype=dtype)


# ---------------------------------------------------------------------------- beach bar

def _project(previous, proposed, bar):
    """MFAX's ``_project_to_legal``: a move onto or across the bar stops next to it."""
    from_left = (previous < bar) & (proposed >= bar)
    from_right = (previous > bar) & (proposed <= bar)
    return np.where(from_right, bar + 1, np.where(from_left, bar - 1, proposed))


def _beach_bar_reward(params, t, joint):
    distance = jnp.abs(params["bar"] - jnp.arange(joint.shape[0], dtype=joint.dtype))
    return -distance[:, None] - jnp.abs(params["actions"])[None, :] / joint.shape[0]


def mfax_beach_bar(num_states: int = 101, bar_location: int = 50, actions=tuple(range(-5, 6)),
                   noise=(-2, -1, 0, 1, 2), noise_probs=(0.05, 0.1, 0.7, 0.1, 0.05), idio_noise: bool = True,
                   horizon: int = MFAX_HORIZON, discount: float = MFAX_DISCOUNT, dtype=None) -> MeanFieldGame:
    """MFAX's 1-D beach bar, bar open throughout (no common noise):

        x' = proj(x, clip(proj(x, clip(x + a)) + eps)),  eps ~ noise_probs on -2..2,
        r(x, a) = -|bar - x| - |a| / S,

    where proj stops a move that reaches or crosses the bar next to it (the bar cell is
    never entered; mu_0 is uniform off it).  S = 101, 11 actions (-5..5), T = 30,
    gamma = 0.99.  MFAX draws the bar uniformly in [floor(S/4), ceil(3S/4)) at every reset;
    here it is a parameter (``benchmarks/peers/golden_mfax.py`` reads MFAX's draws).  The
    reward does not depend on the mean field: it is an MDP, whatever its name.
    """
    if not 0 < bar_location < num_states - 1:
        raise ValueError(f"bar_location must be in [1, {num_states - 2}], got {bar_location}.")
    actions = np.asarray(actions, np.int64)
    x = np.arange(num_states)[:, None, None]
    deterministic = _project(x, np.clip(x + actions[None, :, None], 0, num_states - 1), bar_location)
    noisy = _project(x, np.clip(deterministic + np.asarray(noise)[None, None, :], 0, num_states - 1), bar_location)
    weights = np.asarray(noise_probs, np.float64) if idio_noise else np.zeros(len(noise))
    next_state = np.concatenate([noisy, deterministic], axis=-1).astype(np.int32)
    probs = np.concatenate([weights, [0.0 if idio_noise else 1.0]])
    probs = np.broadcast_to(probs / probs.sum(), next_state.shape).copy()
    mu0 = np.full(num_states, 1.0)
    mu0[bar_location] = 0.0
    params = {"next_state": next_state, "probs": probs, "actions": actions.astype(np.float64),
              "bar": float(bar_location)}
    return make_game(name="mfax_beach_bar", num_states=num_states, num_actions=len(actions), horizon=horizon,
                     discount=discount, reward_fn=_beach_bar_reward, transition_fn=_static_sparse, params=params,
                     initial_distribution=mu0 / mu0.sum(), dtype=dtype)
