"""Damped fixed-point iteration with a softmax (Boltzmann) best response.

    pi_{k+1} = (1 - d) pi_k + d softmax(Q*(L_{pi_k}) / lambda)

With ``soft_backup=True`` (default) Q* is the lambda-regularized optimal Q (soft Bellman
backup), so the fixed point is the regularized Nash equilibrium of algorithm.md section 1.
With ``soft_backup=False`` Q* is the unregularized optimal Q and the update is the
peers' "softmax fixed point" (MFGLib ``PriorDescent(eta=lambda)``, OpenSpiel
``FixedPoint(temperature=lambda)``).  lambda = 0 gives plain best-response iteration.
The iteration contracts when lambda is large relative to the game's mean-field
sensitivity; damping d < 1 widens that range.
"""

from __future__ import annotations


from typing import Any

from mfg.oracles import MeanFieldSolve, mean_field_and_stats, best_response, optimal_q_values
from solvers.base import SolverState, coerce_mean_field_solve, initial_state, pytree_dataclass

__all__ = ["FixedPoint"]


@pytree_dataclass(static=("soft_backup",))
class FixedPoint:
    """Attributes: temperature lambda >= 0, damping d in (0, 1], soft_backup (static),
    mean_field_solve (how L_pi is computed: ``mfg.oracles.MeanFieldSolve``)."""

    temperature: float = 1.0
    damping: float = 1.0
    soft_backup: bool = True
    mean_field_solve: Any = MeanFieldSolve()

    def __post_init__(self):
        coerce_mean_field_solve(self)

    def init(self, game, policy=None, key=None) -> SolverState:
        return initial_state(game, policy, solve=self.mean_field_solve)

    def step(self, game, state: SolverState) -> SolverState:
        backup_temperature = self.temperature if self.soft_backup else 0.0
        q = optimal_q_values(game, state.mean_field, backup_temperature)
        response = best_response(q, self.temperature)
        policy = (1 - self.damping) * state.policy + self.damping * response
        mean_field, stats = mean_field_and_stats(game, policy, self.mean_field_solve, state.mean_field)
        return SolverState(policy, mean_field, state.iteration + 1, None, stats)
