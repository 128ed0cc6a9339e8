"""Online mirror descent (Perolat et al. 2022), with optional entropy regularization.

    y_{k+1} = (1 - eta lambda) y_k + eta Q^{pi_k}_lambda(L_{pi_k}),   pi_{k+1} = softmax(y_{k+1})

i.e. pi_{k+1} proportional to pi_k^(1 - eta lambda) exp(eta Q): with lambda = 0 it is
MFGLib's ``OnlineMirrorDescent(alpha=eta)`` and textbook OMD (OpenSpiel's
``MirrorDescent(lr=eta)`` differs by reading its value table while updating it, see
docs); with lambda > 0 its fixed points satisfy pi = softmax(Q^pi_lambda / lambda), the
regularized equilibrium.  Requires eta lambda <= 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mfg.oracles import induced_mean_field, policy_q_values
from solvers.base import SolverState, initial_state, pytree_dataclass

__all__ = ["MirrorDescent"]


@pytree_dataclass
class MirrorDescent:
    """Attributes: learning_rate eta > 0; temperature lambda >= 0 (eta lambda <= 1)."""

    learning_rate: float = 1.0
    temperature: float = 0.0

    def init(self, game, policy=None, key=None) -> SolverState:
        state = initial_state(game, policy)
        logits = jnp.log(jnp.maximum(state.policy, jnp.finfo(state.policy.dtype).tiny))
        # Start from y = 0 for the uniform policy (exactly MFGLib's initial state).
        logits = logits - logits.max(-1, keepdims=True)
        return SolverState(state.policy, state.mean_field, state.iteration, extra=logits)

    def step(self, game, state: SolverState) -> SolverState:
        q = policy_q_values(game, state.mean_field, state.policy, self.temperature)
        logits = (1 - self.learning_rate * self.temperature) * state.extra + self.learning_rate * q
        policy = jax.nn.softmax(logits, axis=-1)
        return SolverState(policy, induced_mean_field(game, policy), state.iteration + 1, logits)
