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
                     memory O(S A K), for queues, Garnet games, anything irregular.
``ShiftTransition``  moves on a grid by D fixed displacements (torus or clamped edges),
                     probs [A, D] or [S, A, D]; push and expectation are D shifted copies
                     of the grid (memory-bandwidth bound, no gathers): the fast path for
                     crowd and beach-bar games at 10^6+ states.
``ComposedTransition`` a kernel followed by an action-independent one (a move, then
                     noise): P(s'|s,a) = sum_m first(m|s,a) then(s'|m).  K1 successors
                     then K2 cost K1 + K2 entries per (s, a) instead of K1 K2 (the MFAX
                     economy: 2 + 4 instead of 8).

The sparse push-forward is a scatter-add (``segment_sum``).  When the successor structure
is fixed (it does not depend on the mean field), ``pull_index`` precomputes its transpose
once on the host so the push becomes a gather, which XLA vectorizes and which avoids
atomics on accelerators.  The transpose is padded to the largest in-degree, so the gather
wins where in-degrees are even (grids: 1.5x faster than the scatter on this CPU) and loses
where they spread (Garnet: the largest is ~3x the mean, and the scatter is 2 to 4x
faster).  Both paths are kept; ``benchmarks/sweep_states.py`` measures them side by side.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "DenseTransition",
    "SparseTransition",
    "ShiftTransition",
    "ComposedTransition",
    "Transition",
    "successor_count",
    "push_forward",
    "expected_next",
    "policy_expectation",
    "pull_index",
    "sample_next",
    "to_dense",
    "to_sparse",
    "shift_successors",
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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ShiftTransition:
    """Displacement kernel on a grid: from cell x, action a, move to B(x + d_j) w.p. probs[., a, j].

    B is the boundary map: wrap-around (``"torus"``) or clip to the grid per axis
    (``"clamp"``, mass pushed past an edge piles up on it).

    Attributes:
      probs: [A, D] (same for every cell) or [S, A, D] (cell-dependent) probabilities,
        summing to 1 over j.
      offsets: static tuple of D displacement tuples, each of length len(grid).
      grid: static grid shape, prod(grid) = S (row-major flattening).
      boundary: static, "torus" or "clamp".
    """

    probs: jax.Array
    offsets: tuple = dataclasses.field(metadata=dict(static=True))
    grid: tuple = dataclasses.field(metadata=dict(static=True))
    boundary: str = dataclasses.field(default="torus", metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ComposedTransition:
    """Two stages: s -> m ~ first(. | s, a), then m -> s' ~ then(. | m), so that

        P(s' | s, a) = sum_m first(m | s, a) then(s' | m),
        push(P, L) = push(then, push(first, L)),   expect(P, v) = expect(first, expect(then, v)).

    Attributes:
      first: any kernel with S states and A actions (it may depend on the mean field).
      then: a kernel with one action (its action axis has size 1): the second stage does
        not depend on the action, e.g. idiosyncratic noise after a chosen move.
    """

    first: "Transition"
    then: "Transition"


Transition = Union[DenseTransition, SparseTransition, ShiftTransition, ComposedTransition]


def successor_count(transition: Transition) -> int:
    """Static: the entries a sweep reads per (s, a): S (dense), K (sparse), D (shift),
    K1 + K2 (composed)."""
    if isinstance(transition, ComposedTransition):
        return successor_count(transition.first) + successor_count(transition.then)
    return transition.probs.shape[-1]


def _reach(offsets) -> tuple[int, ...]:
    """Per grid axis, the largest |displacement|: the halo width of the padded grid."""
    return tuple(max(abs(off[axis]) for off in offsets) for axis in range(len(offsets[0])))


def _window(halo, offset, grid) -> tuple:
    """Slices of the padded grid that hold the cells displaced by ``offset``."""
    return tuple(slice(h + k, h + k + n) for h, k, n in zip(halo, offset, grid))


def _gather_shifted_values(values: jax.Array, offsets, boundary: str) -> jax.Array:
    """[D, *grid]: out[j](x) = values(B(x + d_j)).

    One padded copy of the grid (wrapped for a torus, edge-replicated for clamped edges,
    so that reading past an edge reads the edge), then one window per displacement.
    """
    halo = _reach(offsets)
    mode = "wrap" if boundary == "torus" else "edge"
    padded = jnp.pad(values, [(h, h) for h in halo], mode=mode)
    return jnp.stack([padded[_window(halo, off, values.shape)] for off in offsets])


def _scatter_shifted_mass(moved: jax.Array, offsets, boundary: str) -> jax.Array:
    """sum_j of moved[j] displaced by d_j, with the boundary applied: [D, *grid] -> grid.

    Each displaced copy is written into a zero halo around the grid (one fused sum of
    pads); the halo is then folded back: wrapped around for a torus, piled onto the edge
    cells for clamped edges.
    """
    grid = moved.shape[1:]
    halo = _reach(offsets)
    total = sum(
        jnp.pad(moved[j], [(h + k, h - k) for h, k in zip(halo, off)])
        for j, off in enumerate(offsets)
    )
    for axis, (h, n) in enumerate(zip(halo, grid)):
        if h == 0:
            continue
        low = lax.slice_in_dim(total, 0, h, axis=axis)
        high = lax.slice_in_dim(total, h + n, 2 * h + n, axis=axis)
        inner = lax.slice_in_dim(total, h, h + n, axis=axis)
        if boundary == "torus":
            # mass that left through the low side re-enters at the high side and vice versa
            pad_low = [(0, 0)] * total.ndim
            pad_low[axis] = (n - h, 0)
            pad_high = [(0, 0)] * total.ndim
            pad_high[axis] = (0, n - h)
            if h <= n:
                inner = inner + jnp.pad(low, pad_low) + jnp.pad(high, pad_high)
            else:  # halo wider than the grid: wrap index by index
                idx = (jnp.arange(-h, n + h) % n)
                inner = jax.ops.segment_sum(jnp.moveaxis(total, axis, 0), idx, n)
                inner = jnp.moveaxis(inner, 0, axis)
        else:
            first = [slice(None)] * total.ndim
            first[axis] = slice(0, 1)
            last = [slice(None)] * total.ndim
            last[axis] = slice(n - 1, n)
            inner = inner.at[tuple(first)].add(low.sum(axis, keepdims=True))
            inner = inner.at[tuple(last)].add(high.sum(axis, keepdims=True))
        total = inner
    return total


def _shift_probs(transition: ShiftTransition) -> tuple[jax.Array, bool]:
    return transition.probs, transition.probs.ndim == 3


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
    if isinstance(transition, ComposedTransition):
        return push_forward(transition.then, push_forward(transition.first, joint)[:, None])
    if isinstance(transition, ShiftTransition):
        probs, per_state = _shift_probs(transition)
        moved = (jnp.einsum("sa,sad->ds", joint, probs) if per_state
                 else jnp.einsum("sa,ad->ds", joint, probs))
        moved = moved.reshape((len(transition.offsets),) + tuple(transition.grid))
        return _scatter_shifted_mass(moved, transition.offsets, transition.boundary).reshape(-1)
    mass = (joint[..., None] * transition.probs).reshape(-1)
    if transition.pull_sources is not None:
        padded = jnp.concatenate([mass, jnp.zeros((1,), mass.dtype)])
        gathered = padded[transition.pull_sources]                              # [S, J]
        if gathered.shape[-1] <= _UNROLLED_SUCCESSORS:      # short minor axis: column adds (see below)
            return sum(gathered[:, j] for j in range(gathered.shape[-1]))
        return gathered.sum(axis=-1)
    num_states = joint.shape[0]
    return jax.ops.segment_sum(
        mass, transition.next_state.reshape(-1), num_segments=num_states
    )


# Up to this many successors per (s, a), the expected next value is summed column by column.
_UNROLLED_SUCCESSORS = 8


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
    if isinstance(transition, ComposedTransition):
        return expected_next(transition.first, expected_next(transition.then, values)[:, 0])
    if isinstance(transition, ShiftTransition):
        grid_values = values.reshape(tuple(transition.grid))
        shifted = _gather_shifted_values(grid_values, transition.offsets, transition.boundary)
        shifted = shifted.reshape(len(transition.offsets), -1)          # [D, S]
        probs, per_state = _shift_probs(transition)
        # [S, A] as one broadcast sum over displacements (no per-action stack)
        return sum((probs[:, :, d] if per_state else probs[None, :, d]) * shifted[d][:, None]
                   for d in range(shifted.shape[0]))
    num_successors = transition.next_state.shape[-1]
    if num_successors > _UNROLLED_SUCCESSORS:
        return jnp.sum(transition.probs * values[transition.next_state], axis=-1)
    # Few successors: one gather per k, summed as columns (a reduction over a short minor
    # axis is a slow, unfused loop on XLA:CPU; this is 3x faster for Garnet at S = 10^6).
    return sum(transition.probs[..., k] * values[transition.next_state[..., k]]
               for k in range(num_successors))


def policy_expectation(transition: Transition, policy: jax.Array):
    """v -> E_pi[v(s') | s] = sum_a pi(a|s) sum_s' P(s'|s,a) v(s'), as a function [S] -> [S].

    The same map as ``sum_a policy * expected_next(transition, v)``, with the policy
    folded into the kernel once, so that a sweep repeated against a fixed policy (policy
    evaluation) does no work over the action axis:

    * dense: P_pi = sum_a pi(a|s) P(.|s,a), [S, S], one matrix-vector product a sweep;
    * shift: D grid-shaped weights w_d(x) = sum_a pi(a|x) p(a, d), so a sweep is D
      products of whole grids (no [S, A] array, whose short minor axis XLA:CPU
      vectorizes poorly: the Bench-MFG Lasry-Lions evaluation at 1,000 states, 98
      sweeps, 0.098 -> 0.068 ms);
    * sparse and composed kernels: the unfolded form (folding a table saves no gather).

    Args:
      transition: the kernel.
      policy: [S, A].
    """
    if isinstance(transition, DenseTransition):
        folded = jnp.einsum("sa,sat->st", policy, transition.probs)
        return lambda values: folded @ values
    if isinstance(transition, ShiftTransition):
        probs, per_state = _shift_probs(transition)
        grid = tuple(transition.grid)
        weights = [sum(policy[:, a] * (probs[:, a, d] if per_state else probs[a, d]) for a in range(policy.shape[1]))
                   .reshape(grid) for d in range(len(transition.offsets))]

        def shifted_sum(values):
            shifted = _gather_shifted_values(values.reshape(grid), transition.offsets, transition.boundary)
            return sum(w * shifted[d] for d, w in enumerate(weights)).reshape(-1)

        return shifted_sum
    from mfg.game import sum_over_actions   # the game module imports this one

    return lambda values: sum_over_actions(policy * expected_next(transition, values))


def _inverse_cdf(probs: jax.Array, uniforms: jax.Array) -> jax.Array:
    """Index j with cdf[j-1] <= u < cdf[j] for each row of probs [N, K] and u [N]."""
    return _inverse_cdf_and_rest(probs, uniforms)[0]


def _inverse_cdf_and_rest(probs: jax.Array, uniforms: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(j, r): the index of ``_inverse_cdf`` and where u fell inside its bin,
    r = (u c_K - cdf[j-1]) / probs[j] in [0, 1): given j, r is again uniform and
    independent of j, so one uniform serves a second draw (``ComposedTransition``)."""
    cdf = jnp.cumsum(probs, axis=-1)
    target = uniforms * cdf[:, -1]
    index = jnp.minimum(jnp.sum(cdf < target[:, None], axis=-1), probs.shape[-1] - 1).astype(jnp.int32)
    width = jnp.take_along_axis(probs, index[:, None], axis=-1)[:, 0]
    below = jnp.take_along_axis(cdf, index[:, None], axis=-1)[:, 0] - width          # cdf[j - 1]
    rest = (target - below) / jnp.where(width > 0, width, 1.0)
    return index, jnp.clip(rest, 0.0, jnp.nextafter(jnp.ones((), uniforms.dtype), 0.0))


def sample_next(transition: Transition, uniforms: jax.Array, states: jax.Array, actions: jax.Array) -> jax.Array:
    """Draw s' ~ P(. | s, a) for a batch of agents, by inverse CDF (one uniform each).

    Cost per agent is O(K) for sparse and shift kernels (O(S) for dense ones): the
    successor row is gathered, never the whole kernel.

    Args:
      transition: the kernel.
      uniforms: [N] uniforms in [0, 1).
      states: [N] int32 current states.
      actions: [N] int32 current actions.
    Returns:
      [N] int32 next states.
    """
    if isinstance(transition, DenseTransition):
        return _inverse_cdf(transition.probs[states, actions], uniforms)
    if isinstance(transition, ComposedTransition):
        middle, rest = _sample_with_rest(transition.first, uniforms, states, actions)
        return sample_next(transition.then, rest, middle, jnp.zeros_like(actions))
    if isinstance(transition, SparseTransition):
        k = _inverse_cdf(transition.probs[states, actions], uniforms)
        return transition.next_state[states, actions, k].astype(jnp.int32)
    probs, per_state = _shift_probs(transition)
    j = _inverse_cdf(probs[states, actions] if per_state else probs[actions], uniforms)
    grid = tuple(transition.grid)
    coords = jnp.stack(jnp.unravel_index(states, grid), axis=-1)          # [N, ndim]
    moved = coords + jnp.asarray(transition.offsets, jnp.int32)[j]
    sizes = jnp.asarray(grid, jnp.int32)
    moved = moved % sizes if transition.boundary == "torus" else jnp.clip(moved, 0, sizes - 1)
    return jnp.ravel_multi_index(tuple(moved.T), grid, mode="clip").astype(jnp.int32)


def _sample_with_rest(transition: Transition, uniforms, states, actions):
    """The first stage of a composed draw: (m, the uniform left over for the second)."""
    if isinstance(transition, ShiftTransition):
        transition = to_sparse(transition)
    if isinstance(transition, SparseTransition):
        k, rest = _inverse_cdf_and_rest(transition.probs[states, actions], uniforms)
        return transition.next_state[states, actions, k].astype(jnp.int32), rest
    if isinstance(transition, DenseTransition):
        return _inverse_cdf_and_rest(transition.probs[states, actions], uniforms)
    raise TypeError(f"a ComposedTransition's first stage must be dense, sparse or shift to be sampled, "
                    f"got {type(transition).__name__}.")


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


def shift_successors(offsets, grid, boundary: str) -> np.ndarray:
    """[S, D] successor index of each cell under each displacement (host array)."""
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in grid], indexing="ij"), -1).reshape(-1, len(grid))
    moved = coords[:, None, :] + np.asarray(offsets)[None, :, :]
    sizes = np.asarray(grid)
    moved = moved % sizes if boundary == "torus" else np.clip(moved, 0, sizes - 1)
    return np.ravel_multi_index(tuple(np.moveaxis(moved, -1, 0)), tuple(grid))


def to_sparse(transition: ShiftTransition) -> SparseTransition:
    """The K-successor form of a shift kernel (K = D)."""
    succ = jnp.asarray(shift_successors(transition.offsets, transition.grid, transition.boundary))
    probs, per_state = _shift_probs(transition)
    S, A = succ.shape[0], probs.shape[-2]
    probs = probs if per_state else jnp.broadcast_to(probs, (S,) + probs.shape)
    return SparseTransition(jnp.broadcast_to(succ[:, None, :], (S, A, succ.shape[1])).astype(jnp.int32), probs)


def to_dense(transition: Transition, num_states: int) -> DenseTransition:
    """Dense [S, A, S] copy of any kernel (for tests and small games)."""
    if isinstance(transition, DenseTransition):
        return transition
    if isinstance(transition, ComposedTransition):
        first = to_dense(transition.first, num_states).probs
        then = to_dense(transition.then, num_states).probs[:, 0, :]
        return DenseTransition(jnp.einsum("sam,mt->sat", first, then))
    if isinstance(transition, ShiftTransition):
        transition = to_sparse(transition)
    one_hot = jax.nn.one_hot(transition.next_state, num_states, dtype=transition.probs.dtype)
    return DenseTransition(jnp.einsum("sak,sakt->sat", transition.probs, one_hot))
