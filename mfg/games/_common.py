"""Pieces shared by the game definitions: fixed kernels in any storage form.

Games whose kernel does not depend on the mean field describe it once and pick the
storage with ``kernel=``:

  "shift"   grid displacements (``ShiftTransition``), the fastest for grid games;
  "pull"    K-successor table with a precomputed transpose (gather push-forward);
  "sparse"  K-successor table, scatter-add push-forward;
  "dense"   [S, A, S] matrix (small games and tests only).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mfg.transitions import (
    DenseTransition,
    ShiftTransition,
    SparseTransition,
    pull_index,
    shift_successors,
)

KERNELS = ("shift", "pull", "sparse", "dense")


def static_dense(params, t, mean_field):
    """Transition fn for a kernel that depends on neither t nor the mean field."""
    del t, mean_field
    return DenseTransition(params["probs"])


def static_sparse(params, t, mean_field):
    """Transition fn for a fixed K-successor kernel (pull index included when built)."""
    del t, mean_field
    return SparseTransition(params["next_state"], params["probs"], params.get("pull_sources"))


@dataclasses.dataclass(frozen=True)
class StaticShift:
    """Transition fn for a fixed grid-displacement kernel (hashable, so it can be static)."""

    offsets: tuple
    grid: tuple
    boundary: str

    def __call__(self, params, t, mean_field):
        del t, mean_field
        return ShiftTransition(params["shift_probs"], self.offsets, self.grid, self.boundary)


def fixed_kernel(kind: str, next_state: np.ndarray, probs: np.ndarray):
    """(params, transition_fn) for a fixed [S, A, K] successor table in storage ``kind``."""
    num_states = next_state.shape[0]
    if kind == "dense":
        dense = np.zeros(next_state.shape[:2] + (num_states,))
        s, a, _ = np.indices(next_state.shape)
        np.add.at(dense, (s, a, next_state), probs)
        return {"probs": dense}, static_dense
    if kind not in ("pull", "sparse"):
        raise ValueError(f"kernel must be one of 'pull', 'sparse', 'dense' for this game, got {kind!r}.")
    params = {"next_state": np.asarray(next_state, np.int32), "probs": np.asarray(probs, np.float64)}
    if kind == "pull":
        params["pull_sources"] = pull_index(next_state, num_states)
    return params, static_sparse


def grid_kernel(kind: str, probs: np.ndarray, offsets, grid, boundary: str):
    """(params, transition_fn) for displacements ``offsets`` w.p. probs [A, D] (or
    [S, A, D], cell-dependent) on ``grid``."""
    if kind not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, got {kind!r}.")
    offsets = tuple(tuple(int(v) for v in off) for off in offsets)
    grid = tuple(int(n) for n in grid)
    if kind == "shift":
        return {"shift_probs": np.asarray(probs, np.float64)}, StaticShift(offsets, grid, boundary)
    succ = shift_successors(offsets, grid, boundary)                  # [S, D]
    S, (A, D) = succ.shape[0], probs.shape[-2:]
    return fixed_kernel(kind, np.broadcast_to(succ[:, None, :], (S, A, D)),
                        np.broadcast_to(probs, (S, A, D)))


def combine_moves(moves, move_noise, noise_probs):
    """Offsets and [A, D] probabilities of 'move by moves[a], then by noise w.p. noise_probs'."""
    moves, move_noise = np.asarray(moves), np.asarray(move_noise)
    table: dict[tuple, np.ndarray] = {}
    for a, m in enumerate(moves):
        for e, p in zip(move_noise, noise_probs):
            key = tuple(np.atleast_1d(m + e).tolist())
            table.setdefault(key, np.zeros(len(moves)))[a] += p
    offsets = sorted(table)
    return offsets, np.stack([table[o] for o in offsets], axis=1)


DEFAULT_STATIONARY_DISCOUNT = 0.9


def stationary_discount(horizon: int | None, discount: float | None) -> float | None:
    """The discount to build a game with: ``discount`` if given; 0.9 for a stationary
    game (``horizon=None``) without one; None (undiscounted) for a finite horizon."""
    if discount is not None:
        return discount
    return DEFAULT_STATIONARY_DISCOUNT if horizon is None else None
