"""Exact oracles: population flows conserve mass, values satisfy their Bellman equations,
closed forms are reproduced, exploitability is non-negative and vanishes at equilibrium."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfg.oracles as oracles
from mfg import games, make_game, uniform_policy
from mfg.oracles import (
    exploitability,
    mean_field_flow,
    optimal_q_values,
    policy_q_values,
    soft_value,
    stationary_mean_field,
)
from mfg.transitions import DenseTransition, expected_next, push_forward
from solvers import MirrorDescent, random_policy, run

FINITE = {
    "left_right": {}, "rock_paper_scissors": {}, "susceptible_infected": {},
    "beach_bar": {"n": 30, "horizon": 6}, "crowd_motion": {}, "linear_quadratic": {},
    "building_evacuation": {"n_floor": 2, "floor_l": 4, "floor_w": 4},
    "conservative_treasure_hunting": {}, "random_linear": {},
    "crowd_modelling": {}, "crowd_modelling_2d": {"size": 6},
    "garnet": {"num_states": 25, "horizon": 5}, "predator_prey": {},
}


@pytest.mark.parametrize("name", sorted(FINITE))
def test_flow_of_a_random_policy_conserves_mass(name):
    game = games.make(name, **FINITE[name])
    policy = random_policy(game, jax.random.key(0))
    flow = mean_field_flow(game, policy)
    assert flow.shape == game.policy_shape
    assert float(flow.min()) >= 0
    np.testing.assert_allclose(flow.sum(axis=(1, 2)), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(FINITE))
def test_exploitability_is_nonnegative_for_random_policies(name):
    game = games.make(name, **FINITE[name])
    for seed in range(3):
        policy = random_policy(game, jax.random.key(seed))
        for temperature in (0.0, 0.3):
            e = exploitability(game, policy, temperature)
            assert float(e.regularized) >= -1e-9, (name, seed, temperature)
            assert float(e.unregularized) >= -1e-9


@pytest.mark.parametrize("layout", ["small grid", "large grid"])
def test_finite_horizon_q_values_satisfy_backward_induction(layout, monkeypatch):
    """Q_t = r_t + E[V_{t+1}], on both code paths: small grids batch the rewards and unroll
    the epochs, large ones compute them epoch by epoch in a partly unrolled loop."""
    if layout == "large grid":
        monkeypatch.setattr(oracles, "BATCHED_REWARD_MAX_PAIRS", 0)
        monkeypatch.setattr(oracles, "FULL_UNROLL_MAX_STEPS", 0)
    game = games.beach_bar(n=12, horizon=6)
    policy = random_policy(game, jax.random.key(1))
    flow = mean_field_flow(game, policy)
    lam = 0.7
    q = policy_q_values(game, flow, policy, lam)
    for t in range(game.horizon):
        v_next = (jnp.zeros(game.num_states) if t == game.horizon - 1 else
                  jnp.sum(policy[t + 1] * (q[t + 1] - lam * jnp.log(policy[t + 1])), -1))
        expected = game.reward(t, flow[t]) + expected_next(game.transition(t, flow[t]), v_next)
        np.testing.assert_allclose(q[t], expected, rtol=1e-12)
    q_star = optimal_q_values(game, flow, lam)
    v_star_next = soft_value(q_star[1], lam)
    np.testing.assert_allclose(
        q_star[0], game.reward(0, flow[0]) + expected_next(game.transition(0, flow[0]), v_star_next),
        rtol=1e-12)


def single_state_game(rewards, discount):
    rewards = np.asarray(rewards, float)
    return make_game(
        name="bandit", num_states=1, num_actions=len(rewards), horizon=None, discount=discount,
        reward_fn=lambda p, t, mu: p["r"][None, :],
        transition_fn=lambda p, t, mu: DenseTransition(jnp.ones((1, len(rewards), 1))),
        params={"r": rewards}, initial_distribution=[1.0],
    )


@pytest.mark.parametrize("lam", [0.0, 0.25, 2.0])
def test_soft_best_response_value_matches_closed_form(lam):
    """One state, rewards r: V* = lam log sum exp(r / lam) / (1 - gamma) (max r if lam = 0)."""
    r, gamma = np.array([1.0, 0.2, -0.5]), 0.9
    game = single_state_game(r, gamma)
    joint = jnp.ones((1, 3)) / 3
    q = optimal_q_values(game, joint, lam)
    closed = (lam * np.log(np.exp(r / lam).sum()) if lam > 0 else r.max()) / (1 - gamma)
    np.testing.assert_allclose(soft_value(q, lam)[0], closed, rtol=1e-12)


def test_stationary_policy_value_matches_closed_form():
    """One state, policy pi: V = (pi . r + lam H(pi)) / (1 - gamma)."""
    r, gamma, lam = np.array([1.0, 0.0]), 0.8, 0.5
    game = single_state_game(r, gamma)
    policy = jnp.array([[0.3, 0.7]])
    q = policy_q_values(game, policy, policy, lam)
    entropy = -np.sum(np.array([0.3, 0.7]) * np.log([0.3, 0.7]))
    closed = (0.3 * 1.0 + lam * entropy) / (1 - gamma)
    np.testing.assert_allclose(oracles.policy_value(q, policy, lam)[0], closed, rtol=1e-12)


def test_stationary_mean_field_is_a_fixed_point_of_the_population_step():
    game = games.garnet(num_states=50, seed=3)
    policy = random_policy(game, jax.random.key(2))
    joint = stationary_mean_field(game, policy)
    np.testing.assert_allclose(joint.sum(), 1.0, atol=1e-12)
    mu_next = push_forward(game.transition(0, joint), joint)
    np.testing.assert_allclose(mu_next, joint.sum(-1), atol=1e-11)


def test_iterative_and_dense_policy_evaluation_agree(monkeypatch):
    game = games.garnet(num_states=60, seed=4, discount=0.95)
    policy = random_policy(game, jax.random.key(3))
    joint = stationary_mean_field(game, policy)
    dense = policy_q_values(game, joint, policy, 0.2)
    monkeypatch.setattr(oracles, "DENSE_SOLVE_MAX_STATES", 0)
    iterative = policy_q_values(game, joint, policy, 0.2)
    np.testing.assert_allclose(iterative, dense, rtol=1e-11)


def _solve_is_cheaper(game) -> bool:
    transition = game.transition(0, stationary_mean_field(game, uniform_policy(game)))
    return bool(oracles._solve_is_cheaper(game, transition))


def test_policy_evaluation_solves_densely_only_where_that_is_cheaper():
    """The O(S^3) solve for small games or slow discounts; iteration for the 960-state serverless game."""
    assert _solve_is_cheaper(games.garnet(num_states=60, seed=4, discount=0.95))
    assert not _solve_is_cheaper(games.serverless())
    # The discount is a traced leaf: on one game size, a slow discount tips the choice to the solve.
    assert _solve_is_cheaper(games.garnet(num_states=512, num_actions=5, branching=5, discount=0.999))
    assert not _solve_is_cheaper(games.garnet(num_states=512, num_actions=5, branching=5, discount=0.5))


@pytest.mark.parametrize("game", [
    games.beach_bar(n=20, horizon=5),
    games.garnet(num_states=20, seed=1, discount=0.9),
], ids=["finite", "stationary"])
def test_exploitability_vanishes_at_a_computed_regularized_equilibrium(game):
    lam = 0.5
    result = run(MirrorDescent(learning_rate=0.2, temperature=lam), game, 800, diagnose=False)
    e = exploitability(game, result.state.policy, lam)
    assert abs(float(e.regularized)) < 1e-9
    # and a perturbed policy is exploitable
    worse = 0.9 * result.state.policy + 0.1 * uniform_policy(game)
    assert float(exploitability(game, worse, lam).regularized) > 1e-6


def test_uniform_policy_exploitability_matches_openspiel_crowd_modelling():
    """OpenSpiel 2.0.2 mfg_crowd_modelling (move penalty 0): uniform policy nash_conv."""
    for size, expected in [(10, 2.824096936443), (100, 0.825)]:
        game = games.crowd_modelling(size=size, horizon=10, move_penalty=0.0)
        value = float(exploitability(game, uniform_policy(game)).unregularized)
        np.testing.assert_allclose(value, expected, rtol=1e-11 if size == 10 else 1e-9)


@pytest.mark.parametrize("game", [games.beach_bar(n=15, horizon=5), games.garnet(num_states=20, seed=5)],
                         ids=["finite", "stationary"])
def test_mean_field_residual_is_zero_exactly_for_the_induced_mean_field(game):
    from mfg.oracles import induced_mean_field, mean_field_residual

    policy = random_policy(game, jax.random.key(4))
    joint = induced_mean_field(game, policy)
    assert float(mean_field_residual(game, policy, joint)) < 1e-10
    other = induced_mean_field(game, random_policy(game, jax.random.key(5)))
    assert float(mean_field_residual(game, policy, other)) > 1e-3
