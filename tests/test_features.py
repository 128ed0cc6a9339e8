"""Feature maps and agent sampling: the pieces the natural actor-critic is built from."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg import features, games
from mfg.transitions import sample_next, to_dense, to_sparse


@pytest.fixture(scope="module")
def grid_game():
    return games.crowd_modelling_2d(size=5, horizon=None)


def all_maps(game):
    rng = np.random.default_rng(0)
    return {
        "one_hot": features.one_hot(game),
        "rbf": features.rbf(game, 3),
        "tile_coding": features.tile_coding(game, 2, tilings=3),
        "state_fn": features.from_state_function(game, lambda x: np.concatenate([x, x**2], 1)),
        "dense": features.from_function(game, lambda x, a: np.concatenate(
            [x * (a[..., None] + 1), rng.normal(size=a.shape + (3,))], -1)),
    }


def dense_phi(fmap, S, A):
    """[S, A, d] tensor of any feature map, built through its public operations."""
    d = fmap.num_features
    basis = jnp.eye(d).reshape((d,) + fmap.weight_shape)
    return jnp.moveaxis(jax.vmap(fmap.table)(basis), 0, -1)


@pytest.mark.parametrize("kind", ["one_hot", "rbf", "tile_coding", "state_fn", "dense"])
def test_feature_norms_are_bounded_by_one(grid_game, kind):
    fmap = all_maps(grid_game)[kind]
    phi = dense_phi(fmap, grid_game.num_states, grid_game.num_actions)
    assert float(jnp.linalg.norm(phi, axis=-1).max()) <= 1 + 1e-12
    assert fmap.max_norm() <= 1 + 1e-12


@pytest.mark.parametrize("kind", ["one_hot", "rbf", "tile_coding", "state_fn", "dense"])
def test_operations_agree_with_the_dense_feature_tensor(grid_game, kind):
    S, A = grid_game.num_states, grid_game.num_actions
    fmap = all_maps(grid_game)[kind]
    phi = dense_phi(fmap, S, A).reshape(S, A, -1)
    key = jax.random.key(1)
    w = jax.random.normal(key, fmap.weight_shape, phi.dtype)
    s = jax.random.randint(jax.random.key(2), (50,), 0, S)
    a = jax.random.randint(jax.random.key(3), (50,), 0, A)
    c = jax.random.normal(jax.random.key(4), (50,), phi.dtype)
    flat_w = w.reshape(-1)
    np.testing.assert_allclose(fmap.table(w), phi @ flat_w, atol=1e-12)
    np.testing.assert_allclose(fmap.at(w, s, a), phi[s, a] @ flat_w, atol=1e-12)
    np.testing.assert_allclose(fmap.accumulate(c, s, a).reshape(-1), c @ phi[s, a], atol=1e-12)
    per_pair = jax.ops.segment_sum(c, s * A + a, num_segments=S * A).reshape(S, A)
    np.testing.assert_allclose(fmap.pull_back(per_pair).reshape(-1), c @ phi[s, a], atol=1e-12)
    weights = jax.random.uniform(jax.random.key(5), (S, A), phi.dtype)
    np.testing.assert_allclose(fmap.second_moment(weights).reshape(-1),
                               jnp.einsum("sa,sai->i", weights, phi**2), atol=1e-12)


@pytest.mark.parametrize("kind", ["one_hot", "rbf", "state_fn", "dense"])
def test_projection_is_weighted_least_squares(grid_game, kind):
    S, A = grid_game.num_states, grid_game.num_actions
    fmap = all_maps(grid_game)[kind]
    phi = np.asarray(dense_phi(fmap, S, A)).reshape(S * A, -1)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(S, A))
    d = rng.uniform(0.1, 1.0, size=(S, A))
    w = fmap.project(jnp.asarray(q), jnp.asarray(d), 0.0)
    root = np.sqrt(d.reshape(-1))
    expected, *_ = np.linalg.lstsq(phi * root[:, None], q.reshape(-1) * root, rcond=None)
    np.testing.assert_allclose(phi @ np.asarray(w).reshape(-1), phi @ expected, atol=1e-8)


def test_one_hot_projection_recovers_q_exactly(grid_game):
    q = jax.random.normal(jax.random.key(0), (grid_game.num_states, grid_game.num_actions))
    fmap = features.one_hot(grid_game)
    np.testing.assert_allclose(fmap.table(fmap.project(q, jnp.full(q.shape, 0.01), 0.0)), q, rtol=1e-15, atol=0)


def test_bad_feature_functions_are_rejected(grid_game):
    with pytest.raises(ValueError, match=r"\[S, d_s\]"):
        features.from_state_function(grid_game, lambda x: x[:3])
    with pytest.raises(ValueError, match="non-finite"):
        features.from_state_function(grid_game, lambda x: np.full_like(x, np.nan))
    with pytest.raises(ValueError, match="unknown feature map 'fourier'"):
        features.make_features(grid_game, "fourier")


# ----------------------------------------------------------------- agent sampling

@pytest.mark.parametrize("form", ["dense", "sparse", "shift"])
def test_sampled_next_states_follow_the_kernel(form):
    game = games.beach_bar(horizon=None, n=6)
    uniform = jnp.full(game.policy_shape, 1.0 / game.num_actions)
    shift = game.transition(jnp.int32(0), uniform)
    kernel = {"shift": shift, "sparse": to_sparse(shift), "dense": to_dense(shift, game.num_states)}[form]
    exact = np.asarray(to_dense(shift, game.num_states).probs)
    n = 200_000
    s = jnp.full((n,), 0, jnp.int32).at[n // 2:].set(3)
    a = jnp.full((n,), 2, jnp.int32)
    u = jax.random.uniform(jax.random.key(0), (n,))
    nxt = np.asarray(sample_next(kernel, u, s, a))
    for start, half in ((0, slice(0, n // 2)), (3, slice(n // 2, n))):
        freq = np.bincount(nxt[half], minlength=game.num_states) / (n // 2)
        # 5 standard errors of a frequency estimated from n/2 draws.
        np.testing.assert_allclose(freq, exact[start, 2], atol=5 * np.sqrt(0.25 / (n // 2)))
