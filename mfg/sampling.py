"""Sampling primitives for simulated agents: initial states and actions by inverse CDF.

Shared by the sampled critics (``solvers.agents``) and the N-player simulation
(``mfg.nplayer.sampled``); array code over the agent axis, no loop over agents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mfg.game import MeanFieldGame

__all__ = ["initial_agents", "draw_actions"]


def initial_agents(game: MeanFieldGame, key: jax.Array, num_agents: int) -> jax.Array:
    """[N] int32 states drawn from mu_0 (inverse CDF by binary search: O(N log S))."""
    dtype = game.initial_distribution.dtype
    cdf = jnp.cumsum(game.initial_distribution.astype(dtype))
    uniforms = jax.random.uniform(key, (num_agents,), dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, uniforms, side="right"), game.num_states - 1).astype(jnp.int32)


def draw_actions(policy_cdf: jax.Array, states: jax.Array, uniforms: jax.Array) -> jax.Array:
    """a_i ~ pi(. | s_i) by inverse CDF, one uniform each."""
    num_actions = policy_cdf.shape[-1]
    return jnp.minimum(jnp.sum(policy_cdf[states] < uniforms[:, None], axis=-1), num_actions - 1).astype(jnp.int32)
