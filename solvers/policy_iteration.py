"""Policy iteration for mean-field games: evaluate the current policy, improve on it.

At iteration k, with L_k the carried mean field:

    Q_k       = Q^{pi_k}(., .; L_k)                 (policy evaluation, L frozen)
    pi_{k+1}  = argmax_a Q_k(s, a)                  (``softmax_temperature`` = 0: policy iteration)
              = softmax(Q_k(s, .) / tau)            (tau > 0: Boltzmann policy iteration)
    L_{k+1}   = L_{pi_{k+1}}                        (``mean_field_update="induced"``)
              = (1 - b_k) L_k + b_k L_{pi_{k+1}}    ("damped": b_k = mean_field_damping;
                                                     "harmonic": b_k = 1 / (k + 2), smooth PI)

The improvement uses Q of the *current* policy (not the optimal Q of ``FixedPoint``), so
one step is an evaluation, not a value iteration.  These are Bench-MFG's ``PI_jax``
variants "policy_iteration", "smooth_policy_iteration" and "boltzmann_policy_iteration"
(which truncate the evaluation at H - 2 sweeps from zero and take 20 warm-started
push-forward steps for the mean field: ``evaluation_sweeps`` and ``mean_field_solve``
reproduce that), and, with an exact evaluation, OpenSpiel's Boltzmann policy iteration
(``open_spiel.python.mfg.algorithms.boltzmann_policy_iteration``, there over a finite
horizon).  Greedy ties go to the first maximiser, as in both peers.

Boltzmann PI's fixed point pi = softmax(Q^pi / tau) is not the entropy-regularized
equilibrium (Q^pi carries no entropy term), so the diagnostics report unregularized
exploitability (``temperature`` = 0).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from mfg.oracles import MeanFieldSolve, mean_field_and_stats, best_response, policy_q_values, truncated_q_values
from solvers.base import SolverState, coerce_mean_field_solve, initial_state, pytree_dataclass

__all__ = ["PolicyIteration"]

MEAN_FIELD_UPDATES = ("induced", "damped", "harmonic")


@pytree_dataclass(static=("mean_field_update", "evaluation_sweeps", "tie_break"))
class PolicyIteration:
    """Attributes: softmax_temperature tau >= 0 (0: greedy); mean_field_update
    ("induced", "damped", "harmonic"; static); mean_field_damping b in (0, 1] for
    "damped"; evaluation_sweeps (static; 0 = exact evaluation); tie_break ("first" or
    "uniform"; static); mean_field_solve (``mfg.oracles.MeanFieldSolve`` or a mapping)."""

    softmax_temperature: float = 0.0
    mean_field_update: str = "induced"
    mean_field_damping: float = 1.0
    evaluation_sweeps: int = 0
    tie_break: str = "first"
    mean_field_solve: Any = MeanFieldSolve()

    temperature = 0.0  # the diagnostics' lambda (not a field: see the module docstring)

    def __post_init__(self):
        coerce_mean_field_solve(self)
        if self.mean_field_update not in MEAN_FIELD_UPDATES:
            raise ValueError(f"mean_field_update must be one of {', '.join(map(repr, MEAN_FIELD_UPDATES))}, "
                             f"got {self.mean_field_update!r}.")
        if not isinstance(self.evaluation_sweeps, int) or self.evaluation_sweeps < 0:
            raise ValueError(f"evaluation_sweeps must be an int >= 0 (0: exact), got {self.evaluation_sweeps!r}.")
        if self.tie_break not in ("first", "uniform"):
            raise ValueError(f"tie_break must be 'first' or 'uniform', got {self.tie_break!r}.")

    @property
    def mean_field_is_induced(self) -> bool:
        return self.mean_field_update == "induced"

    def init(self, game, policy=None, key=None) -> SolverState:
        return initial_state(game, policy, solve=self.mean_field_solve)

    def step(self, game, state: SolverState) -> SolverState:
        if self.evaluation_sweeps and not game.is_finite_horizon:
            q = truncated_q_values(game, state.mean_field, state.policy, sweeps=self.evaluation_sweeps)
        else:
            q = policy_q_values(game, state.mean_field, state.policy)
        policy = best_response(q, self.softmax_temperature, self.tie_break)
        induced, stats = mean_field_and_stats(game, policy, self.mean_field_solve, state.mean_field)
        if self.mean_field_update == "induced":
            return SolverState(policy, induced, state.iteration + 1, None, stats)
        dtype = policy.dtype
        if self.mean_field_update == "harmonic":
            rate = 1.0 / (state.iteration.astype(dtype) + 2.0)
        else:
            rate = jnp.asarray(self.mean_field_damping, dtype)
        mean_field = (1 - rate) * state.mean_field + rate * induced
        if self.mean_field_solve.renormalize:
            mean_field = mean_field / mean_field.sum()
        return SolverState(policy, mean_field, state.iteration + 1, None, stats)
