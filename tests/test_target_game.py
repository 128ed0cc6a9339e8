"""The tabular game coarse-grained from the tick model (mfg.serverless.target_game).

Oracles: closed forms (the KPA rule, the cpu.shares water-filling, the cold-start wait
integral), the exact regularized equilibrium by two independent methods (the damped
fixed point and exact NAC), and a direct linear solve of the stationary mean field.
The online learner (the sampled critic) is checked against that equilibrium.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg.oracles import induced_mean_field
from mfg.serverless.learned import TargetActions
from mfg.serverless.target_game import (CAPACITY_RATIOS, CoarseWorkload, KPA_TARGET_UTILIZATION, TargetGameModel,
                                        _speed, _survival_of_cold_wait, coarse_grain, decode_target_states,
                                        population_cost, pressure_of, serverless_targets, social_optimum,
                                        stationary_joint)
from solvers import FixedPoint, NaturalActorCritic, run

LAMBDA = 0.01


@pytest.fixture(scope="module")
def workload():
    from mfg.serverless.settings import Workload
    from mfg.serverless.workloads import generate_functions
    return coarse_grain(Workload.from_trace(generate_functions(300, seed=1), max_containers=64))


@pytest.fixture(scope="module")
def games(workload):
    return {setting: serverless_targets(workload, setting) for setting in CAPACITY_RATIOS}


def equilibrium(game, temperature=LAMBDA):
    return run(FixedPoint(temperature=temperature, damping=0.1), game, 300).state


# ------------------------------------------------------------------- the model

def test_coarse_grain_has_an_idle_bin_and_one_chain_per_type(workload):
    assert workload.levels.shape == (3, 8) and np.all(workload.levels[:, 0] == 0)
    assert np.all(workload.levels[:, 1:] > 0) and np.all(np.diff(workload.levels[:, 1:], axis=1) >= 0)
    np.testing.assert_allclose(workload.chain.sum(-1), 1.0)
    assert np.all(np.diff(workload.service_mean) > 0)                   # types by service time
    np.testing.assert_allclose(workload.weights.sum(), 1.0)


def test_the_action_runs_the_kpa_rule_on_the_measured_load(workload, games):
    game = games["tight"]
    actions = TargetActions(cpu=(0.5, 1.0)).table()
    states = decode_target_states(workload.num_types, workload.num_bins)
    s = int(np.flatnonzero((states[:, 0] == 2) & (states[:, 1] == 5) & (states[:, 2] == 1))[0])
    rate, service = workload.levels[2, 5], workload.service_mean[2]
    for a, (target, floor, _) in enumerate(actions):
        want = min(64, max(floor, math.ceil(rate * service / (target * KPA_TARGET_UTILIZATION))))
        # Phase 1 holds the measured size whatever the next load.
        np.testing.assert_array_equal(np.asarray(game.params["containers"][0, s, a]), want)


def test_without_containers_the_next_requests_wait_for_a_cold_start(workload, games):
    game = games["tight"]
    states = decode_target_states(workload.num_types, workload.num_bins)
    idle_cold = int(np.flatnonzero((states[:, 0] == 0) & (states[:, 1] == 0) & (states[:, 2] == 0))[0])
    warm_busy = int(np.flatnonzero((states[:, 0] == 0) & (states[:, 1] == 4) & (states[:, 2] == 1))[0])
    cold = np.asarray(game.params["cold"])
    assert np.all(cold[idle_cold][:, 1:] == 1) and np.all(cold[idle_cold][:, 0] == 0)   # arrivals only
    assert np.all(cold[warm_busy] == 0)


def test_the_cold_wait_integral_matches_quadrature():
    for cold_start, slo, service in [(1.0, 0.5, 0.1), (1.0, 2.0, 0.3), (2.0, 1.0, 1.5)]:
        t = np.linspace(0.0, cold_start, 2_000_001)
        miss = np.minimum(1.0, np.exp(-(slo - cold_start + t) / service))
        expected = np.trapezoid(miss, t) / cold_start
        assert float(_survival_of_cold_wait(cold_start, slo, service)) == pytest.approx(expected, rel=1e-8)


def test_contention_divides_the_capacity_by_shares_only_when_it_binds(games):
    game = games["congested"]
    joint = induced_mean_field(game, jnp.full(game.policy_shape, 1.0 / game.num_actions))
    speed = _speed(game.params, joint, 50)
    busy = jnp.sum(joint * game.params["busy"], axis=0)
    assert float(pressure_of(game.params, joint)) > 1
    # The water-filling hands out exactly the capacity, in proportion to the shares.
    assert float(jnp.sum(busy * speed)) == pytest.approx(float(game.params["capacity"]), rel=1e-9)
    cpu = np.asarray(game.params["cpu"])
    np.testing.assert_allclose(np.asarray(speed)[cpu == 0.5] * 2, np.asarray(speed)[cpu == 1.0], rtol=1e-9)
    roomy = games["roomy"]
    assert float(pressure_of(roomy.params, joint)) < 1
    np.testing.assert_array_equal(np.asarray(_speed(roomy.params, joint, 50)), 1.0)


def test_equal_shares_give_the_proportional_slowdown(games):
    """Everyone on the same CPU request: v = C / W, whatever the request."""
    game = games["congested"]
    cpu = np.asarray(game.params["cpu"])
    for choice in (0.5, 1.0):
        policy = np.where(cpu[None, :] == choice, 1.0, 0.0) / np.sum(cpu == choice)
        joint = induced_mean_field(game, jnp.asarray(np.broadcast_to(policy, game.policy_shape)))
        speed = np.asarray(_speed(game.params, joint, 50))
        expected = 1.0 / float(pressure_of(game.params, joint))
        np.testing.assert_allclose(speed[cpu == choice], expected, rtol=1e-9)


def test_the_stationary_solve_equals_the_iterated_mean_field(games):
    game = games["tight"]
    policy = jax.nn.softmax(jax.random.normal(jax.random.key(0), game.policy_shape), -1)
    np.testing.assert_allclose(np.asarray(stationary_joint(game, policy)),
                               np.asarray(induced_mean_field(game, policy)), atol=1e-10)


def test_the_population_cost_gradient_matches_finite_differences(games):
    game = games["congested"]
    logits = jax.random.normal(jax.random.key(1), game.policy_shape)
    direction = jax.random.normal(jax.random.key(2), game.policy_shape)

    def objective(z):
        return population_cost(game, stationary_joint(game, jax.nn.softmax(z, -1)))["objective"]

    analytic = float(jnp.sum(jax.grad(objective)(logits) * direction))
    h = 1e-5
    numeric = float((objective(logits + h * direction) - objective(logits - h * direction)) / (2 * h))
    assert analytic == pytest.approx(numeric, rel=1e-4)


# -------------------------------------------------------------- the equilibrium

@pytest.mark.parametrize("setting", ["tight", "congested"])
def test_exact_nac_and_the_damped_fixed_point_reach_the_same_equilibrium(games, setting):
    game = games[setting]
    fixed = run(FixedPoint(temperature=LAMBDA, damping=0.1), game, 300)
    nac = run(NaturalActorCritic(learning_rate=5.0 * (1 - 0.9), temperature=LAMBDA, mean_field_rate=0.2), game, 300)
    assert fixed.metrics["exploitability"][-1] <= 1e-9
    assert nac.metrics["exploitability"][-1] <= 1e-9
    assert float(jnp.abs(fixed.state.policy - nac.state.policy).max()) <= 1e-5


def test_online_nac_reaches_the_oracle_and_its_error_falls_with_the_agents(games):
    """The paper's online setting on a game with a known answer: the sampled critic with
    one-hot features (they represent any policy), N agents, against the exact
    regularized equilibrium.  Measured (docs/nac.md): ~0.3, ~0.03, ~0.003."""
    game = games["tight"]
    reference = equilibrium(game).policy
    mu = induced_mean_field(game, reference).sum(1)
    finals, distances = [], []
    for agents in (100, 1000, 10_000):
        solver = NaturalActorCritic(learning_rate=0.25 * (1 - 0.9), temperature=LAMBDA, mean_field_rate=0.2,
                                    critic="sampled", num_agents=agents, td_steps=30, critic_rate=0.3,
                                    exact_diagnostics=False)
        result = run(solver, game, 1000, key=jax.random.key(3))
        finals.append(float(np.mean(result.metrics["exploitability"][-100:])))
        distances.append(float((mu * jnp.abs(result.state.policy - reference).sum(-1)).sum() / 2))
    assert finals[2] <= 1e-2, finals
    assert finals[1] < finals[0] / 2 and finals[2] < finals[1] / 2, finals
    assert distances[2] < distances[1] < distances[0], distances


# --------------------------------------------------------- the price of anarchy

def test_mean_field_control_costs_no_more_than_the_equilibrium(games):
    game = games["congested"]
    eq = equilibrium(game, 0.001)
    eq_cost = float(population_cost(game, stationary_joint(game, eq.policy))["objective"])
    policy, values = social_optimum(game, eq.policy, steps=500)
    assert values[-1] < values[0]
    assert float(population_cost(game, stationary_joint(game, policy))["objective"]) < eq_cost


def test_the_congestion_price_charges_only_under_contention(workload, games):
    charged = serverless_targets(workload, "roomy", model={"congestion_price": 1.0})
    joint = induced_mean_field(charged, jnp.full(charged.policy_shape, 1.0 / charged.num_actions))
    np.testing.assert_array_equal(np.asarray(charged.reward(jnp.int32(0), joint)),
                                  np.asarray(games["roomy"].reward(jnp.int32(0), joint)))
    charged = serverless_targets(workload, "congested", model={"congestion_price": 1.0})
    assert np.all(np.asarray(charged.reward(jnp.int32(0), joint)) <=
                  np.asarray(games["congested"].reward(jnp.int32(0), joint)))
    # The population's cost is at the flat price: the congestion charge is a transfer.
    assert population_cost(charged, joint)["objective"] == pytest.approx(
        float(population_cost(games["congested"], joint)["objective"]), rel=1e-12)


# ------------------------------------------------------------------- bad input

def test_bad_input_is_named(workload):
    with pytest.raises(ValueError, match="unknown cluster setting 'huge'"):
        serverless_targets(workload, "huge")
    with pytest.raises(ValueError, match="TargetGameModel.price = -1"):
        serverless_targets(workload, model={"price": -1.0})
    with pytest.raises(ValueError, match="TargetGameModel.capacity = 0"):
        serverless_targets(workload, capacity=0.0)
    with pytest.raises(ValueError, match="as serverless_targets\\(capacity=...\\)"):
        serverless_targets(workload, model={"capacity": 3.0})
    with pytest.raises(ValueError, match="TargetGameModel.reaction"):
        TargetGameModel(capacity=1.0, reaction=0.5)
    with pytest.raises(ValueError, match="CoarseWorkload.chain"):
        CoarseWorkload(workload.levels, workload.chain * 2, workload.service_mean, workload.slo, workload.weights)
    with pytest.raises(ValueError, match="num_types = 1000 exceeds the workload's"):
        from mfg.serverless.settings import Workload
        from mfg.serverless.workloads import generate_functions
        coarse_grain(Workload.from_trace(generate_functions(20, seed=1)), num_types=1000)
    with pytest.raises(TypeError, match="workload must be a CoarseWorkload"):
        serverless_targets({"levels": 1})
