"""Transition operators: how a population moves, without forming [S, A, S] when it need not.

A transition kernel P(s' | s, a) is used through two linear maps, and only through them:

* the push-forward (population step, Gamma_2 before the new policy is applied)
      push(P, L)(s') = sum_{s,a} L(s, a) P(s' | s, a)                  L: [S, A] -> [S]
* its adjoint, the expected next value
      expect(P, v)(s, a) = sum_{s'} P(s' | s, a) v(s')                  v: [S] -> [S, A]

so that  <push(P, L), v> = <L, expect(P, v)>  (tested).

Two storage forms:

``DenseTransition``  probs [S, A, S]; memory O(S^2 A), for small or fully mixing games.
``SparseTransition`` K successors per (s, a): next_state [S, A, K] int32 and probs [S, A, K];
                     memory O(S A K), for grids, queues and Garnet games.

The sparse push-forward is a scatter-add (``segment_sum``).  When the successor structure
is fixed (it does not depend on the mean field), ``pull_index`` precomputes its transpose
once on the host so the push becomes a gather, which XLA vectorizes better on CPU and
avoids atomics on GPU.  Both paths are kept: the benchmark measures them side by side.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DenseTransition",
    "SparseTransition",
    "Transition",
    "push_forward",
    "expected_next",
    "pull_index",
    "to_dense",
]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DenseTransition:
    """Dense kernel.

    Attributes:
      probs: [S, A, S] float, probs[s, a, s'] = P(s' | s, a); each [s, a] row sums to 1.
    """

    probs: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparseTransition:
    """K-successor kernel: P(next_state[s, a, k] | s, a) += probs[s, a, k].

    Repeated successors are allowed (their probabilities add up).

    Attributes:
      next_state: [S, A, K] int32, successor indices in [0, S).
      probs: [S, A, K] float, non-negative, summing to 1 over k.
      pull_sources: optional [S, J] int32, the transpose of ``next_state``: for each
        successor s', the flat indices into the [S*A*K] entries that land on s', padded
        with S*A*K (which points at an appended zero).  Built by ``pull_index``.
    """

    next_state: jax.Array
    probs: jax.Array
    pull_sources: jax.Array | None = None


Transition = Union[DenseTransition, SparseTransition]


def push_forward(transition: Transition, joint: jax.Array) -> jax.Array:
    """Next-state distribution: mu'(s') = sum_{s,a} L(s,a) P(s'|s,a).

    Args:
      transition: the kernel (dense or sparse).
      joint: [S, A] state-action mass L.
    Returns:
      [S] next-state mass (same total mass as ``joint``).
    """
    if isinstance(transition, DenseTransition):
        return jnp.einsum("sa,sat->t", joint, transition.probs)
    mass = (joint[..., None] * transition.probs).reshape(-1)
    if transition.pull_sources is not None:
        padded = jnp.concatenate([mass, jnp.zeros((1,), mass.dtype)])
        return padded[transition.pull_sources].sum(axis=-1)
    num_states = joint.shape[0]
    return jax.ops.segment_sum(
        mass, transition.next_state.reshape(-1), num_segments=num_states
    )


def expected_next(transition: Transition, values: jax.Array) -> jax.Array:
    """Expected next value: E[v(s') | s, a] = sum_{s'} P(s'|s,a) v(s').

    Args:
      transition: the kernel.
      values: [S] (or [..., S] batched on leading axes for the dense form) values.
    Returns:
      [S, A] expected next values.
    """
    if isinstance(transition, DenseTransition):
        return jnp.einsum("sat,t->sa", transition.probs, values)
    return jnp.sum(transition.probs * values[transition.next_state], axis=-1)


def pull_index(next_state: np.ndarray, num_states: int) -> np.ndarray:
    """Transpose a fixed successor table, for the gather ("pull") push-forward.

    Args:
      next_state: [S, A, K] integer successor table (host array).
      num_states: S.
    Returns:
      [S, J] int32; row s' lists the flat (s, a, k) entries whose successor is s',
      padded with S*A*K.  J is the largest in-degree.
    """
    flat = np.asarray(next_state).reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= num_states):
        raise ValueError(
            f"next_state has entries outside [0, {num_states}): "
            f"min {flat.min()}, max {flat.max()}"
        )
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=num_states)
    width = max(int(counts.max(initial=0)), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(flat.size) - np.repeat(starts, counts)
    table = np.full((num_states, width), flat.size, dtype=np.int64)
    table[flat[order], rank] = order
    return table.astype(np.int32)


def to_dense(transition: Transition, num_states: int) -> DenseTransition:
    """Dense [S, A, S] copy of any kernel (for tests and small games)."""
    if isinstance(transition, DenseTransition):
        return transition
    one_hot = jax.nn.one_hot(transition.next_state, num_states, dtype=transition.probs.dtype)
    return DenseTransition(jnp.einsum("sak,sakt->sat", transition.probs, one_hot))
