"""Simulated agents for the sampled critics (linear and neural NAC).

N agents move in the system frozen at the mean field L_t: rewards r(s, a, L_t), kernel
P(. | s, a, L_t), actions from the current policy.  The first round(eps N) agents are
*explorers*: at every step they redraw (s, a) uniformly over the S A pairs, so every pair
is sampled with weight >= eps / (S A); the others are the *population*, whose
trajectories persist across iterations and whose state histogram is the empirical mean
field.  All functions are array code over the agent axis (no loop over agents).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mfg.game import MeanFieldGame
from mfg.sampling import draw_actions, initial_agents
from mfg.transitions import Transition, sample_next

__all__ = ["FrozenSystem", "frozen_system", "initial_agents", "explorer_mask", "draw_actions",
           "agent_step", "population_histogram"]


class FrozenSystem(NamedTuple):
    """The MDP an agent faces at L_t, with the policy it follows.

    reward [S, A]; transition P(. | s, a, L_t); log_policy [S, A]; policy_cdf [S, A]."""

    reward: jax.Array
    transition: Transition
    log_policy: jax.Array
    policy_cdf: jax.Array


def frozen_system(game: MeanFieldGame, joint: jax.Array, policy: jax.Array) -> FrozenSystem:
    """The stationary game frozen at ``joint``, followed with ``policy`` ([S, A] each)."""
    dtype = policy.dtype
    t0 = jnp.int32(0)
    return FrozenSystem(game.reward(t0, joint).astype(dtype), game.transition(t0, joint),
                        jnp.log(jnp.maximum(policy, jnp.finfo(dtype).tiny)), jnp.cumsum(policy, axis=-1))


def explorer_mask(num_agents: int, fraction) -> jax.Array:
    """[N] bool, True for the first round(fraction N) agents (``fraction`` may be traced)."""
    return jnp.arange(num_agents) < jnp.round(fraction * num_agents)


def agent_step(system: FrozenSystem, explorer: jax.Array, states, actions, uniforms):
    """One step of every agent: explorers redraw (s, a), then s' ~ P(. | s, a), a' ~ pi(. | s').

    Args:
      uniforms: [3, N]: row 0 for s', row 1 for a', row 2 for an explorer's pair (one
        uniform picks the pair index floor(u S A) = s A + a).
    Returns:
      (s, a, s', a'), the transition each agent made (explorers' (s, a) replaced).
    """
    S, A = system.reward.shape
    pair = jnp.minimum((uniforms[2] * (S * A)).astype(jnp.int32), S * A - 1)
    states = jnp.where(explorer, pair // A, states)
    actions = jnp.where(explorer, pair % A, actions)
    next_states = sample_next(system.transition, uniforms[0], states, actions)
    return states, actions, next_states, draw_actions(system.policy_cdf, next_states, uniforms[1])


def population_histogram(visited: jax.Array, explorer: jax.Array, num_states: int) -> jax.Array:
    """[S] empirical state distribution of the population agents over visited [K, N]."""
    weights = jnp.broadcast_to(~explorer, visited.shape).astype(jnp.result_type(float))
    counts = jax.ops.segment_sum(weights.reshape(-1), visited.reshape(-1), num_segments=num_states)
    return counts / counts.sum()
