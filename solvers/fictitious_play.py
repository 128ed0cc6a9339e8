"""Fictitious play: average best responses, weighting policies by their mean fields.

At iteration k (from 0), with L_k the mean field of pi_k and BR_k the best response to it
(softmax(Q*_lambda / lambda) when lambda > 0, greedy otherwise):

    alpha_k = learning_rate if learning_rate > 0 else 1 / (k + 2)
    pi_{k+1}(a|s) = [(1 - alpha_k) mu_k(s) pi_k(a|s) + alpha_k mu_BR(s) BR_k(a|s)]
                    / [(1 - alpha_k) mu_k(s) + alpha_k mu_BR(s)]

(uniform where the denominator is 0), so that pi_{k+1} is the policy of the averaged
population (Perrin et al. 2020).  This is MFGLib's ``FictitiousPlay(alpha=0)`` and
OpenSpiel's ``FictitiousPlay`` (weight 1/(k+1) from k = 1: the same sequence); MFGLib
splits argmax ties uniformly (``tie_break="uniform"``), OpenSpiel takes the first.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from mfg.oracles import MeanFieldSolve, mean_field_and_stats, best_response, optimal_q_values
from solvers.base import SolverState, coerce_mean_field_solve, initial_state, pytree_dataclass

__all__ = ["FictitiousPlay"]


@pytree_dataclass(static=("tie_break",))
class FictitiousPlay:
    """Attributes: temperature lambda >= 0; learning_rate (0 = harmonic 1/(k+2)); tie_break;
    mean_field_solve (how mean fields are computed: ``mfg.oracles.MeanFieldSolve``)."""

    temperature: float = 0.0
    learning_rate: float = 0.0
    tie_break: str = "uniform"
    mean_field_solve: Any = MeanFieldSolve()

    def __post_init__(self):
        coerce_mean_field_solve(self)

    def init(self, game, policy=None, key=None) -> SolverState:
        return initial_state(game, policy, solve=self.mean_field_solve)

    def step(self, game, state: SolverState) -> SolverState:
        q = optimal_q_values(game, state.mean_field, self.temperature)
        response = best_response(q, self.temperature, self.tie_break)
        response_field, _ = mean_field_and_stats(game, response, self.mean_field_solve, state.mean_field)
        dtype = state.policy.dtype
        harmonic = 1.0 / (state.iteration.astype(dtype) + 2.0)
        alpha = jnp.where(jnp.asarray(self.learning_rate, dtype) > 0, self.learning_rate, harmonic)
        mu = state.mean_field.sum(-1, keepdims=True)
        mu_br = response_field.sum(-1, keepdims=True)
        numer = (1 - alpha) * mu * state.policy + alpha * mu_br * response
        denom = (1 - alpha) * mu + alpha * mu_br
        uniform = jnp.full_like(numer, 1.0 / game.num_actions)
        policy = jnp.where(denom > 0, numer / jnp.where(denom > 0, denom, 1.0), uniform)
        mean_field, stats = mean_field_and_stats(game, policy, self.mean_field_solve, state.mean_field)
        return SolverState(policy, mean_field, state.iteration + 1, None, stats)
