"""Transition operators: the push-forward conserves mass, is the adjoint of the expected
next value, and the dense, sparse (scatter) and sparse (gather) forms agree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg.transitions import (
    ComposedTransition,
    SparseTransition,
    expected_next,
    pull_index,
    push_forward,
    sample_next,
    successor_count,
    to_dense,
)


def random_sparse(seed, S=40, A=4, K=3):
    rng = np.random.default_rng(seed)
    nxt = rng.integers(0, S, size=(S, A, K))
    probs = rng.random((S, A, K))
    probs /= probs.sum(-1, keepdims=True)
    return nxt, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_push_forward_conserves_mass_in_every_form(seed):
    nxt, probs = random_sparse(seed)
    joint = np.random.default_rng(seed + 10).random((40, 4))
    joint /= joint.sum()
    scatter = SparseTransition(jnp.asarray(nxt), jnp.asarray(probs))
    gather = SparseTransition(jnp.asarray(nxt), jnp.asarray(probs), jnp.asarray(pull_index(nxt, 40)))
    dense = to_dense(scatter, 40)
    outs = [np.asarray(push_forward(t, jnp.asarray(joint))) for t in (scatter, gather, dense)]
    for out in outs:
        assert out.min() >= 0
        np.testing.assert_allclose(out.sum(), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(outs[0], outs[2], rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_adjoint_identity(seed):
    """<push(P, L), v> = <L, E[v(s') | s, a]> for any L and v."""
    nxt, probs = random_sparse(seed)
    rng = np.random.default_rng(seed + 20)
    joint, values = jnp.asarray(rng.random((40, 4))), jnp.asarray(rng.normal(size=40))
    for tr in (SparseTransition(jnp.asarray(nxt), jnp.asarray(probs)),
               to_dense(SparseTransition(jnp.asarray(nxt), jnp.asarray(probs)), 40)):
        lhs = jnp.dot(push_forward(tr, joint), values)
        rhs = jnp.sum(joint * expected_next(tr, values))
        np.testing.assert_allclose(lhs, rhs, rtol=1e-13)


@pytest.mark.parametrize("successors", [3, 12])   # summed column by column / reduced
def test_expected_next_matches_dense_matrix_product(successors):
    nxt, probs = random_sparse(3, K=successors)
    values = jnp.asarray(np.random.default_rng(0).normal(size=40))
    sparse = SparseTransition(jnp.asarray(nxt), jnp.asarray(probs))
    dense = to_dense(sparse, 40)
    np.testing.assert_allclose(expected_next(sparse, values),
                               np.einsum("sat,t->sa", np.asarray(dense.probs), values), rtol=1e-13)


def test_pull_index_lists_every_incoming_entry_once():
    nxt = np.array([[[1, 1]], [[0, 2]], [[2, 2]]])  # S=3, A=1, K=2; repeated successors
    table = pull_index(nxt, 3)
    flat = nxt.reshape(-1)
    for target in range(3):
        sources = sorted(int(i) for i in table[target] if i < flat.size)
        assert sources == sorted(np.flatnonzero(flat == target).tolist())


def test_pull_index_rejects_out_of_range_successors():
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        pull_index(np.array([[[0, 3]]]), 3)


def test_push_forward_is_linear_under_jit_and_vmap():
    nxt, probs = random_sparse(5)
    tr = SparseTransition(jnp.asarray(nxt), jnp.asarray(probs))
    joints = jnp.asarray(np.random.default_rng(1).random((6, 40, 4)))
    batched = jax.jit(jax.vmap(lambda j: push_forward(tr, j)))(joints)
    np.testing.assert_allclose(batched.sum(0), push_forward(tr, joints.sum(0)), rtol=1e-13)


@pytest.mark.parametrize("grid,boundary", [
    ((7,), "torus"), ((7,), "clamp"), ((5, 6), "torus"), ((5, 6), "clamp"),
    ((2, 1), "clamp"), ((2, 3), "torus"),  # displacements wider than the grid
])
@pytest.mark.parametrize("per_state", [False, True])
def test_shift_kernel_equals_its_successor_table(grid, boundary, per_state):
    """A grid-shift kernel moves mass and reads values exactly like the K-successor table
    it stands for (torus: wrap around; clamp: clip each coordinate to the grid)."""
    from mfg.transitions import ShiftTransition, to_sparse

    rng = np.random.default_rng(len(grid) * 10 + per_state)
    offsets = tuple(tuple(int(x) for x in row) for row in rng.integers(-4, 5, size=(4, len(grid))))
    S, A = int(np.prod(grid)), 3
    probs = rng.random((S, A, 4) if per_state else (A, 4))
    probs /= probs.sum(-1, keepdims=True)
    shift = ShiftTransition(jnp.asarray(probs), offsets, grid, boundary)
    table = to_sparse(shift)
    joint, values = jnp.asarray(rng.random((S, A))), jnp.asarray(rng.normal(size=S))
    np.testing.assert_allclose(push_forward(shift, joint), push_forward(table, joint), atol=1e-14)
    np.testing.assert_allclose(expected_next(shift, values), expected_next(table, values), atol=1e-14)


def test_clamped_shift_piles_mass_on_the_edge():
    from mfg.transitions import ShiftTransition

    shift = ShiftTransition(jnp.ones((1, 1)), ((2,),), (4,), "clamp")   # always move +2
    mass = push_forward(shift, jnp.array([[0.1], [0.2], [0.3], [0.4]]))
    np.testing.assert_allclose(mass, [0.0, 0.0, 0.1, 0.9], atol=1e-15)


def random_composed(seed, S=40, A=4, K1=2, K2=3):
    """A move (K1 successors per (s, a)) then action-independent noise (K2 per state)."""
    first = SparseTransition(*map(jnp.asarray, random_sparse(seed, S, A, K1)))
    then = SparseTransition(*map(jnp.asarray, random_sparse(seed + 100, S, 1, K2)))
    return ComposedTransition(first, then)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_composed_kernel_is_the_product_of_its_stages(seed):
    """P(s'|s,a) = sum_m first(m|s,a) then(s'|m): push, expectation and the dense form
    all agree with the matrix product, and the push is the expectation's adjoint."""
    composed = random_composed(seed)
    product = np.einsum("sam,mt->sat", np.asarray(to_dense(composed.first, 40).probs),
                        np.asarray(to_dense(composed.then, 40).probs)[:, 0, :])
    np.testing.assert_allclose(np.asarray(to_dense(composed, 40).probs), product, rtol=1e-13)
    rng = np.random.default_rng(seed + 30)
    joint, values = jnp.asarray(rng.random((40, 4))), jnp.asarray(rng.normal(size=40))
    np.testing.assert_allclose(push_forward(composed, joint), np.einsum("sa,sat->t", np.asarray(joint), product),
                               rtol=1e-13)
    np.testing.assert_allclose(expected_next(composed, values), product @ np.asarray(values), rtol=1e-13)
    np.testing.assert_allclose(jnp.dot(push_forward(composed, joint), values),
                               jnp.sum(joint * expected_next(composed, values)), rtol=1e-13)
    assert successor_count(composed) == 2 + 3


def test_sampled_draws_of_a_composed_kernel_follow_the_product():
    """One uniform per draw: the first stage's index, then the uniform left inside its bin
    (again uniform) for the second stage."""
    composed = random_composed(5, S=6, A=2)
    exact = np.asarray(to_dense(composed, 6).probs)
    n = 200_000
    states = jnp.full((n,), 4, jnp.int32)
    actions = jnp.full((n,), 1, jnp.int32)
    draws = np.asarray(sample_next(composed, jax.random.uniform(jax.random.key(1), (n,)), states, actions))
    freq = np.bincount(draws, minlength=6) / n
    np.testing.assert_allclose(freq, exact[4, 1], atol=5 * np.sqrt(0.25 / n))


def test_a_game_with_a_malformed_second_stage_is_refused():
    from mfg.game import GameValidationError, make_game
    composed = random_composed(0)
    bad = ComposedTransition(composed.first, SparseTransition(composed.then.next_state[:, :1].repeat(2, 1),
                                                              composed.then.probs[:, :1].repeat(2, 1)))
    with pytest.raises(GameValidationError, match="second stage, one action"):
        make_game(name="bad", num_states=40, num_actions=4, reward_fn=lambda p, t, m: jnp.zeros((40, 4)),
                  transition_fn=lambda p, t, m: bad, initial_distribution=np.full(40, 1 / 40), discount=0.9)


def test_the_policy_folded_expectation_is_the_unfolded_one_in_every_form():
    """E_pi[v(s')|s] with pi folded into the kernel (dense, shift) or not (sparse,
    composed) is sum_a pi(a|s) E[v(s')|s, a]."""
    from mfg.game import sum_over_actions
    from mfg.transitions import ShiftTransition, policy_expectation, to_sparse
    rng = np.random.default_rng(7)
    sparse = SparseTransition(*map(jnp.asarray, random_sparse(7)))
    offsets = ((-1, 0), (0, 1), (1, 1), (0, 0))
    shift_probs = rng.dirichlet(np.ones(4), size=(40, 4))
    kernels = [sparse, to_dense(sparse, 40), random_composed(7),
               ShiftTransition(jnp.asarray(shift_probs), offsets, (5, 8), "clamp"),
               ShiftTransition(jnp.asarray(shift_probs[0]), offsets, (5, 8), "torus")]
    kernels.append(to_sparse(kernels[-1]))
    policy = jnp.asarray(rng.dirichlet(np.ones(4), size=40))
    values = jnp.asarray(rng.normal(size=40))
    for kernel in kernels:
        np.testing.assert_allclose(policy_expectation(kernel, policy)(values),
                                   sum_over_actions(policy * expected_next(kernel, values)), rtol=1e-13, atol=1e-14)
