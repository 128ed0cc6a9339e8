"""Online mirror descent (Perolat et al. 2022), with optional entropy regularization.

    y_{k+1} = (1 - eta lambda) y_k + eta Q^{pi_k}_lambda(L_{pi_k}),   pi_{k+1} = softmax(y_{k+1})

i.e. pi_{k+1} proportional to pi_k^(1 - eta lambda) exp(eta Q): with lambda = 0 it is
MFGLib's ``OnlineMirrorDescent(alpha=eta)`` and textbook OMD (OpenSpiel's
``MirrorDescent(lr=eta)`` differs by reading its value table while updating it, see
docs); with lambda > 0 its fixed points satisfy pi = softmax(Q^pi_lambda / lambda), the
regularized equilibrium.  Requires eta lambda <= 1.

Inexact steps (stationary games).  ``evaluation_sweeps = n > 0`` replaces the exact
Q^{pi_k} by n Bellman backups from zero (``mfg.oracles.truncated_q_values``, error
O(gamma^n)); ``mean_field_solve`` sets how L_{pi_{k+1}} is computed (damping, tolerance,
cap, a fixed number of steps, a warm start from L_k).  Bench-MFG's OMD is
``MirrorDescent(learning_rate=eta / tau, evaluation_sweeps=H - 2,
mean_field_solve=MeanFieldSolve(max_iterations=20, fixed_steps=True, warm_start=True,
renormalize=True))`` (its softmax temperature tau folded into the step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from typing import Any

from mfg.oracles import MeanFieldSolve, mean_field_and_stats, policy_q_values, truncated_q_values
from solvers.base import SolverState, coerce_mean_field_solve, initial_state, pytree_dataclass

__all__ = ["MirrorDescent"]


@pytree_dataclass(static=("evaluation_sweeps",))
class MirrorDescent:
    """Attributes: learning_rate eta > 0; temperature lambda >= 0 (eta lambda <= 1);
    evaluation_sweeps (static; 0 = exact evaluation); mean_field_solve (a
    ``MeanFieldSolve`` or a mapping of its fields)."""

    learning_rate: float = 1.0
    temperature: float = 0.0
    evaluation_sweeps: int = 0
    mean_field_solve: Any = MeanFieldSolve()

    def __post_init__(self):
        coerce_mean_field_solve(self)
        if not isinstance(self.evaluation_sweeps, int) or self.evaluation_sweeps < 0:
            raise ValueError(f"evaluation_sweeps must be an int >= 0 (0: exact), got {self.evaluation_sweeps!r}.")

    def _q_values(self, game, state):
        if self.evaluation_sweeps and not game.is_finite_horizon:
            return truncated_q_values(game, state.mean_field, state.policy, self.temperature,
                                      sweeps=self.evaluation_sweeps)
        return policy_q_values(game, state.mean_field, state.policy, self.temperature)

    def init(self, game, policy=None, key=None) -> SolverState:
        state = initial_state(game, policy, solve=self.mean_field_solve)
        logits = jnp.log(jnp.maximum(state.policy, jnp.finfo(state.policy.dtype).tiny))
        # Start from y = 0 for the uniform policy (exactly MFGLib's initial state).
        logits = logits - logits.max(-1, keepdims=True)
        return SolverState(state.policy, state.mean_field, state.iteration, logits, state.mean_field_stats)

    def step(self, game, state: SolverState) -> SolverState:
        q = self._q_values(game, state)
        logits = (1 - self.learning_rate * self.temperature) * state.extra + self.learning_rate * q
        policy = jax.nn.softmax(logits, axis=-1)
        mean_field, stats = mean_field_and_stats(game, policy, self.mean_field_solve, state.mean_field)
        return SolverState(policy, mean_field, state.iteration + 1, logits, stats)
