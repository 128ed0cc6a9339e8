"""A malformed game is refused at construction with a message naming the problem."""

import jax.numpy as jnp
import numpy as np
import pytest

from mfg import GameValidationError, make_game
from mfg.games import garnet
from mfg.transitions import DenseTransition, SparseTransition


def dense_game(probs=None, reward_shape=(2, 2), mu0=(0.5, 0.5), **kwargs):
    probs = np.full((2, 2, 2), 0.5) if probs is None else np.asarray(probs)
    defaults = dict(name="toy", num_states=2, num_actions=2, horizon=3)
    defaults.update(kwargs)
    return make_game(
        reward_fn=lambda p, t, mu: jnp.zeros(reward_shape),
        transition_fn=lambda p, t, mu: DenseTransition(p["probs"]),
        params={"probs": probs}, initial_distribution=mu0, **defaults,
    )


def test_a_valid_game_builds():
    game = dense_game()
    assert game.policy_shape == (3, 2, 2)


def test_negative_probability_is_named():
    probs = np.full((2, 2, 2), 0.5)
    probs[1, 0] = [1.5, -0.5]
    with pytest.raises(GameValidationError, match=r"non-negative.*\(1, 0, 1\).*-0.5"):
        dense_game(probs)


def test_rows_that_do_not_sum_to_one_are_named():
    probs = np.full((2, 2, 2), 0.5)
    probs[0, 1] = [0.5, 0.6]
    with pytest.raises(GameValidationError, match=r"sum to 1.*\(0, 1\).*1.1"):
        dense_game(probs)


def test_wrong_transition_shape_is_named():
    with pytest.raises(GameValidationError, match=r"shape \[S, A, S\] = \(2, 2, 2\).*\(2, 2, 3\)"):
        dense_game(np.full((2, 2, 3), 1 / 3))


def test_wrong_reward_shape_is_named():
    with pytest.raises(GameValidationError, match=r"reward_fn must return shape \[S, A\]"):
        dense_game(reward_shape=(2, 3))


def test_initial_distribution_must_be_a_distribution():
    with pytest.raises(GameValidationError, match="initial_distribution must sum to 1"):
        dense_game(mu0=(0.5, 0.6))
    with pytest.raises(GameValidationError, match=r"initial_distribution must have shape \[S\]"):
        dense_game(mu0=(1.0,))


@pytest.mark.parametrize("discount", [0.0, 1.0, 1.5, -0.1, None])
def test_stationary_discount_must_lie_in_open_unit_interval(discount):
    with pytest.raises(GameValidationError, match=r"discount must lie in \(0, 1\)"):
        dense_game(horizon=None, discount=discount)


def test_finite_horizon_discount_range_and_horizon_type():
    with pytest.raises(GameValidationError, match=r"discount must lie in \(0, 1\]"):
        dense_game(discount=1.2)
    with pytest.raises(GameValidationError, match="horizon must be a positive int"):
        dense_game(horizon=0)


def test_sparse_successors_out_of_range_are_named():
    def transition(p, t, mu):
        return SparseTransition(jnp.array([[[0], [2]], [[1], [1]]]), jnp.ones((2, 2, 1)))

    with pytest.raises(GameValidationError, match=r"next_state entries must lie in \[0, 2\)"):
        make_game(name="bad", num_states=2, num_actions=2, horizon=2,
                  reward_fn=lambda p, t, mu: jnp.zeros((2, 2)), transition_fn=transition,
                  initial_distribution=(0.5, 0.5))


def test_a_failing_user_function_is_reported_with_its_game():
    def broken(p, t, mu):
        raise KeyError("missing_param")

    with pytest.raises(GameValidationError, match="toy at t=0: calling reward_fn/transition_fn failed"):
        make_game(name="toy", num_states=2, num_actions=2, horizon=2, reward_fn=broken,
                  transition_fn=broken, initial_distribution=(0.5, 0.5))


def test_unknown_mean_field_kind_lists_allowed_values():
    with pytest.raises(GameValidationError, match="'state' or 'state_action'"):
        dense_game(mean_field="population")


def test_game_builders_check_their_own_parameters():
    with pytest.raises(ValueError, match="branching must be a positive int"):
        garnet(branching=0)
