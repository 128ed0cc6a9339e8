"""Feature maps phi(s, a) for linear function approximation (actor and critic).

A linear approximator is f_w(s, a) = phi(s, a) . w.  Three storage forms, one interface:

``OneHotFeatures``    phi(s, a) = e_{(s, a)}, d = S A: the tabular case.  Weights [S, A].
``StateFeatures``     phi(s, a) = psi(s) (x) e_a (a state feature vector per action),
                      d = d_s A.  Weights [d_s, A]; psi [S, d_s] is stored, never the
                      [S, A, d] tensor.  RBF and tile coding over normalized state
                      variables, and any user function of the state, build this form.
``DenseFeatures``     any phi [S, A, d] (e.g. a user function of (s, a) evaluated once).
                      Weights [d].

Norm bound.  Every constructor here scales the features so that ||phi(s, a)||_2 <= 1 for
all (s, a) (the assumption of the NAC analysis: TD step sizes and the critic radius R_w
are then in the units of the rewards).  ``max_norm`` reports the bound actually attained.

Operations (all pure, jittable; ``w`` has ``weight_shape``):

  table(w)            [S, A]  phi(s, a) . w for every pair
  at(w, s, a)         [N]     phi(s_i, a_i) . w for a batch of pairs
  accumulate(c, s, a) w-shaped  sum_i c_i phi(s_i, a_i) (the TD update direction)
  project(q, weights, ridge)  argmin_w sum_{s,a} weights(s,a) (phi(s,a).w - q(s,a))^2
                                       + ridge ||w||^2   (weighted least squares)
  pull_back(c)        w-shaped  sum_{s,a} c(s, a) phi(s, a) for a table c [S, A]
  second_moment(weights)      w-shaped  sum_{s,a} weights(s,a) phi(s,a)^2 (elementwise):
                              the diagonal of E_d[phi phi^T], a TD preconditioner
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FeatureMap",
    "OneHotFeatures",
    "StateFeatures",
    "DenseFeatures",
    "one_hot",
    "rbf",
    "tile_coding",
    "from_state_function",
    "from_function",
    "normalized_state_coordinates",
    "FEATURES",
    "make_features",
]


def _pinv(gram: jax.Array) -> jax.Array:
    """Pseudo-inverse of symmetric PSD Gram matrices (features never active, e.g. unused
    tiles, give zero rows: the minimum-norm least-squares solution leaves them at 0)."""
    return jnp.linalg.pinv(gram, hermitian=True)


def _static(default=dataclasses.MISSING):
    return dataclasses.field(default=default, metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class OneHotFeatures:
    """Tabular features: phi(s, a) = e_{(s, a)}; weights are an [S, A] table."""

    num_states: int = _static()
    num_actions: int = _static()

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.num_states, self.num_actions)

    @property
    def num_features(self) -> int:
        return self.num_states * self.num_actions

    def table(self, w: jax.Array) -> jax.Array:
        return w

    def at(self, w: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        return w[s, a]

    def accumulate(self, coeffs: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        flat = jax.ops.segment_sum(coeffs, s * self.num_actions + a, num_segments=self.num_features)
        return flat.reshape(self.weight_shape)

    def project(self, q: jax.Array, weights: jax.Array, ridge) -> jax.Array:
        # Diagonal normal equations: w = d q / (d + ridge), exact where d > 0.
        denominator = weights + ridge
        return jnp.where(denominator > 0, weights * q / jnp.where(denominator > 0, denominator, 1), 0)

    def pull_back(self, coeffs: jax.Array) -> jax.Array:
        return coeffs

    def second_moment(self, weights: jax.Array) -> jax.Array:
        return weights

    def max_norm(self) -> float:
        return 1.0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StateFeatures:
    """phi(s, a) = psi(s) (x) e_a.

    Attributes:
      psi: [S, d_s] state features (rows of norm <= 1).
      num_actions: A (static).
    """

    psi: jax.Array
    num_actions: int = _static()

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.psi.shape[1], self.num_actions)

    @property
    def num_features(self) -> int:
        return self.psi.shape[1] * self.num_actions

    def table(self, w: jax.Array) -> jax.Array:
        return self.psi @ w

    def at(self, w: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        return jnp.sum(self.psi[s] * w.T[a], axis=-1)

    def accumulate(self, coeffs: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        # sum_i c_i psi(s_i) e_{a_i}^T, grouped by action: [d_s, A].
        per_action = jax.nn.one_hot(a, self.num_actions, dtype=coeffs.dtype) * coeffs[:, None]
        return self.psi[s].T @ per_action

    def project(self, q: jax.Array, weights: jax.Array, ridge) -> jax.Array:
        # The problem separates over actions: w_a = (psi' D_a psi + ridge I)^-1 psi' D_a q_a.
        gram = jnp.einsum("sa,si,sj->aij", weights, self.psi, self.psi)
        rhs = jnp.einsum("sa,si->ai", weights * q, self.psi)
        eye = jnp.eye(self.psi.shape[1], dtype=q.dtype)
        return jnp.einsum("aij,aj->ia", _pinv(gram + ridge * eye), rhs)

    def pull_back(self, coeffs: jax.Array) -> jax.Array:
        return self.psi.T @ coeffs

    def second_moment(self, weights: jax.Array) -> jax.Array:
        return (self.psi * self.psi).T @ weights

    def max_norm(self) -> float:
        return float(np.sqrt(np.max(np.sum(np.square(np.asarray(self.psi)), axis=1))))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DenseFeatures:
    """Any feature tensor. Attributes: phi [S, A, d] (norms <= 1)."""

    phi: jax.Array

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.phi.shape[-1],)

    @property
    def num_features(self) -> int:
        return self.phi.shape[-1]

    def table(self, w: jax.Array) -> jax.Array:
        return self.phi @ w

    def at(self, w: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        return self.phi[s, a] @ w

    def accumulate(self, coeffs: jax.Array, s: jax.Array, a: jax.Array) -> jax.Array:
        return coeffs @ self.phi[s, a]

    def project(self, q: jax.Array, weights: jax.Array, ridge) -> jax.Array:
        gram = jnp.einsum("sa,sai,saj->ij", weights, self.phi, self.phi)
        rhs = jnp.einsum("sa,sai->i", weights * q, self.phi)
        eye = jnp.eye(self.phi.shape[-1], dtype=q.dtype)
        return _pinv(gram + ridge * eye) @ rhs

    def pull_back(self, coeffs: jax.Array) -> jax.Array:
        return jnp.einsum("sa,sai->i", coeffs, self.phi)

    def second_moment(self, weights: jax.Array) -> jax.Array:
        return jnp.einsum("sa,sai->i", weights, self.phi * self.phi)

    def max_norm(self) -> float:
        return float(np.sqrt(np.max(np.sum(np.square(np.asarray(self.phi)), axis=-1))))


FeatureMap = OneHotFeatures | StateFeatures | DenseFeatures


# ------------------------------------------------------------------- constructors

def _dtype(game, dtype):
    return dtype or game.initial_distribution.dtype


def normalized_state_coordinates(game) -> np.ndarray:
    """[S, ndim] grid coordinates of every state scaled to [0, 1] (from ``game.state_shape``)."""
    grid = tuple(game.state_shape)
    coords = np.stack(np.unravel_index(np.arange(game.num_states), grid), axis=-1).astype(np.float64)
    return coords / np.maximum(np.asarray(grid, np.float64) - 1.0, 1.0)


def _unit_rows(psi: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(psi, axis=-1, keepdims=True)
    return psi / np.maximum(norms, 1.0)


def one_hot(game) -> OneHotFeatures:
    """Tabular features (d = S A): linear NAC is then exactly tabular NPG."""
    return OneHotFeatures(game.num_states, game.num_actions)


def from_state_function(game, fn: Callable[[np.ndarray], np.ndarray], *, normalize: bool = True,
                        dtype=None) -> StateFeatures:
    """psi(s) = fn(coords) for user state features; coords [S, ndim] in [0, 1].

    ``fn`` maps the [S, ndim] normalized coordinates to [S, d_s].  Rows with norm above
    1 are scaled down to norm 1 when ``normalize`` (the NAC norm bound).
    """
    psi = np.asarray(fn(normalized_state_coordinates(game)), dtype=np.float64)
    if psi.ndim != 2 or psi.shape[0] != game.num_states:
        raise ValueError(f"state feature function must return [S, d_s] = [{game.num_states}, d_s], "
                         f"got shape {psi.shape}.")
    if not np.all(np.isfinite(psi)):
        raise ValueError("state feature function returned non-finite values.")
    psi = _unit_rows(psi) if normalize else psi
    return StateFeatures(jnp.asarray(psi, _dtype(game, dtype)), game.num_actions)


def rbf(game, centers_per_dim: int | Sequence[int] = 5, width: float | None = None,
        bias: bool = True, dtype=None) -> StateFeatures:
    """Gaussian radial basis functions on a regular grid of centres over [0, 1]^ndim.

    psi_j(x) = exp(-||x - c_j||^2 / (2 width^2)) (plus a constant feature if ``bias``),
    each row scaled to unit norm.  ``width`` defaults to the centre spacing.
    d_s = prod(centers_per_dim) (+1).
    """
    ndim = len(game.state_shape)
    counts = [centers_per_dim] * ndim if isinstance(centers_per_dim, int) else list(centers_per_dim)
    if len(counts) != ndim or min(counts) < 1:
        raise ValueError(f"centers_per_dim must be a positive int or {ndim} positive ints, got {centers_per_dim}.")
    axes = [np.linspace(0.0, 1.0, n) for n in counts]
    centers = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, ndim)
    width = width if width is not None else 1.0 / max(max(counts) - 1, 1)
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}.")

    def fn(x):
        sq = np.sum((x[:, None, :] - centers[None]) ** 2, axis=-1)
        psi = np.exp(-sq / (2 * width**2))
        psi = psi / np.linalg.norm(psi, axis=1, keepdims=True)
        return np.concatenate([psi, np.ones((x.shape[0], 1))], 1) / np.sqrt(2) if bias else psi

    return from_state_function(game, fn, dtype=dtype)


def tile_coding(game, tiles_per_dim: int | Sequence[int] = 4, tilings: int = 4, dtype=None) -> StateFeatures:
    """Tile coding: ``tilings`` offset grids of tiles over [0, 1]^ndim.

    Each state activates one tile per tiling, with value 1/sqrt(tilings) (so ||psi|| = 1).
    Tiling k is shifted by k / (tilings * tiles) along every axis.
    d_s = tilings * prod(tiles_per_dim + 1).
    """
    ndim = len(game.state_shape)
    tiles = [tiles_per_dim] * ndim if isinstance(tiles_per_dim, int) else list(tiles_per_dim)
    if len(tiles) != ndim or min(tiles) < 1 or tilings < 1:
        raise ValueError(f"tiles_per_dim must be a positive int or {ndim} positive ints and tilings >= 1, "
                         f"got {tiles_per_dim}, {tilings}.")
    tiles = np.asarray(tiles)

    def fn(x):
        per_tiling = int(np.prod(tiles + 1))
        psi = np.zeros((x.shape[0], tilings * per_tiling))
        for k in range(tilings):
            index = np.floor(x * tiles + k / tilings).astype(np.int64)   # in [0, tiles]
            flat = np.ravel_multi_index(tuple(index.T), tuple(tiles + 1))
            psi[np.arange(x.shape[0]), k * per_tiling + flat] = 1.0 / np.sqrt(tilings)
        return psi

    return from_state_function(game, fn, dtype=dtype)


def from_function(game, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], *, normalize: bool = True,
                  dtype=None) -> DenseFeatures:
    """phi(s, a) = fn(coords, a) for user state-action features.

    ``fn`` gets coords [S, A, ndim] (normalized, see ``normalized_state_coordinates``) and
    actions [S, A] and returns [S, A, d]; rows are scaled to norm <= 1 when ``normalize``.
    """
    S, A = game.num_states, game.num_actions
    coords = np.broadcast_to(normalized_state_coordinates(game)[:, None, :], (S, A, len(game.state_shape)))
    actions = np.broadcast_to(np.arange(A)[None, :], (S, A))
    phi = np.asarray(fn(coords, actions), dtype=np.float64)
    if phi.ndim != 3 or phi.shape[:2] != (S, A):
        raise ValueError(f"feature function must return [S, A, d] = [{S}, {A}, d], got shape {phi.shape}.")
    if not np.all(np.isfinite(phi)):
        raise ValueError("feature function returned non-finite values.")
    phi = _unit_rows(phi) if normalize else phi
    return DenseFeatures(jnp.asarray(phi, _dtype(game, dtype)))


FEATURES: dict[str, Callable] = {"one_hot": one_hot, "rbf": rbf, "tile_coding": tile_coding}


def make_features(game, kind: str = "one_hot", **params) -> FeatureMap:
    """Build a registered feature map by name ("one_hot", "rbf", "tile_coding")."""
    if kind not in FEATURES:
        raise ValueError(f"unknown feature map {kind!r}; known: {', '.join(sorted(FEATURES))}.")
    return FEATURES[kind](game, **params)
