"""Pieces shared by the game definitions: static kernels read from ``params``."""

from __future__ import annotations

import numpy as np

from mfg.transitions import DenseTransition, SparseTransition, pull_index


def static_dense(params, t, mean_field):
    """Transition fn for a kernel that depends on neither t nor the mean field."""
    del t, mean_field
    return DenseTransition(params["probs"])


def static_sparse(params, t, mean_field):
    """Transition fn for a fixed K-successor kernel (pull index included when built)."""
    del t, mean_field
    return SparseTransition(params["next_state"], params["probs"], params.get("pull_sources"))


def sparse_params(next_state: np.ndarray, probs: np.ndarray, pull: bool) -> dict:
    """params entries for ``static_sparse``; ``pull`` precomputes the gather index."""
    num_states = next_state.shape[0]
    out = {"next_state": np.asarray(next_state, np.int32), "probs": np.asarray(probs, np.float64)}
    if pull:
        out["pull_sources"] = pull_index(next_state, num_states)
    return out
