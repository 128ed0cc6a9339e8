"""The online NAC policy of the tick simulator (mfg/serverless/learned.py) and its training
protocol (mfg/serverless/comparison.py): the KPA at a target is one constant choice of
the policy, the critic and actor steps are the formulas of the module docstring, what a
frozen policy keeps, and clear errors on bad settings."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg.serverless.comparison import deploy, population, run_policy, summarize, train_online, warm_start
from mfg.serverless.kpa import KPAConfig
from mfg.serverless.learned import (ALL_OBSERVATIONS, OBSERVATIONS, MoveActions, ObservationFeatures, OnlineNAC,
                                    TargetActions, memory_features, observe)
from mfg.serverless.platform import Platform
from mfg.serverless.policies import KPA
from mfg.serverless.settings import Workload
from mfg.serverless.simulator import simulate
from mfg.serverless.workloads import generate_functions
from solvers.nac import natural_actor_step

MAX_CONTAINERS = 50


@pytest.fixture(scope="module")
def small():
    """24 functions of a synthetic day, 20 minutes from 17:00, on a tight cluster."""
    workload = Workload.from_trace(generate_functions(60, seed=0), max_containers=MAX_CONTAINERS)
    pop = population(workload, 24, 0, start=17 * 60, minutes=20)
    platform = Platform(max_containers=MAX_CONTAINERS, capacity=pop.capacity("tight"))
    return pop, platform


def certain(policy: OnlineNAC, action: int) -> OnlineNAC:
    """The policy that always takes ``action`` (phi's entries are >= 0 with unit norm, so a
    logit of 1000 x sum(phi) >= 1000 beats every other logit of 0)."""
    theta = np.zeros(np.shape(policy.theta), np.float32)
    theta[:, action] = 1e3
    return dataclasses.replace(policy, theta=jnp.asarray(theta))


def test_target_actions_are_the_product_of_targets_floors_and_cpu():
    actions = TargetActions(targets=(0.3, 1.0), min_scale=(0, 1), cpu=(0.5, 1.0))
    table = actions.table()
    assert actions.num_actions == 8 and table.shape == (8, 3)
    expected = {(t, m, c) for t in (0.3, 1.0) for m in (0, 1) for c in (0.5, 1.0)}
    assert {tuple(np.round(row, 6)) for row in table.tolist()} == expected
    assert tuple(table[actions.index_of(1.0, 1, 0.5)]) == (1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="no action has target 0.7"):
        actions.index_of(0.7)
    assert MoveActions().table()[:, 0].tolist() == [-1.0, 0.0, 1.0]


@pytest.mark.parametrize("make, message", [
    (lambda: TargetActions(targets=()), "targets must be a non-empty tuple"),
    (lambda: TargetActions(targets=(0.5, -1.0)), "numbers > 0"),
    (lambda: TargetActions(min_scale=(0.5,)), "whole numbers >= 0"),
    (lambda: MoveActions(steps=(0.5,)), "steps must be"),
    (lambda: ObservationFeatures(singles=("speed",)), "singles must name observations"),
    (lambda: ObservationFeatures(grids=(("load", "nothing"),)), "each grid is a pair"),
    (lambda: ObservationFeatures(centers=1), "centers must be an int >= 2"),
])
def test_bad_action_and_feature_settings_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_observations_lie_in_the_unit_box_and_features_are_unit_rows():
    rng = np.random.default_rng(0)
    n = 200
    obs = observe(jnp.asarray(rng.uniform(0, 500, n)), jnp.asarray(rng.uniform(0, 800, n)),
                  jnp.asarray(rng.uniform(0, 5, n)), jnp.asarray(rng.uniform(0, 300, n)), jnp.float32(1.7),
                  jnp.float32(3600.0 * 18), jnp.asarray(rng.uniform(1, 50, n)), jnp.asarray(rng.uniform(0.01, 9, n)),
                  MAX_CONTAINERS)
    assert obs.shape == (n, len(OBSERVATIONS))
    assert float(obs.min()) >= 0 and float(obs.max()) <= 1
    features = ObservationFeatures()
    phi = np.asarray(features(obs))
    assert phi.shape == (n, features.num_features)
    np.testing.assert_allclose(np.linalg.norm(phi, axis=1), 1.0, rtol=1e-5)
    assert phi.min() >= 0


def test_the_memory_observation_maps_a_functions_violation_share_onto_the_unit_interval():
    """The tenth observation: 0 for a function that never violated, 1/3 at 0.9%, 1 at 100%."""
    n = 4
    ones = jnp.ones(n)
    share = jnp.asarray([0.0, 0.009, 1.0, 5.0])
    obs = observe(ones, ones, ones, ones, jnp.float32(1.0), jnp.float32(0.0), 5 * ones, ones, MAX_CONTAINERS,
                  recent_violations=share)
    assert obs.shape == (n, len(ALL_OBSERVATIONS)) and ALL_OBSERVATIONS[:-1] == OBSERVATIONS
    np.testing.assert_allclose(np.asarray(obs[:, -1]), [0.0, 1 / 3, 1.0, 1.0], atol=1e-6)
    features = memory_features()
    assert features.reads_memory and not ObservationFeatures().reads_memory
    assert features(obs).shape == (n, ObservationFeatures().num_features + 25)


def test_the_memory_is_each_functions_exponential_average_of_its_violations_and_requests(small):
    """With ``memory`` the policy carries, per function, averages of its violations and
    requests over decision periods with weight P / tau; it observes their ratio."""
    pop, platform = small
    policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS, memory=True,
                                 memory_seconds=600.0)
    assert policy.features.reads_memory
    frozen = deploy(policy, pop)
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, frozen, jax.random.key(2), minutes=pop.minutes,
                      initial_containers=warm_start(pop, MAX_CONTAINERS))
    memory = result.policy_state[1]
    # 20 one-minute periods, 19 closed by a decision (the last period is still open):
    # the averages weigh the period j closed at decision d by rho (1 - rho)^(d - j), rho = 0.1
    rho, closed = 0.1, 19
    weight_of_all = 1 - (1 - rho) ** closed
    requests = np.asarray(result.per_function["requests"]) - np.asarray(memory.period_requests)
    assert np.all(np.asarray(memory.recent_requests) <= rho * requests + 1e-3)
    assert np.all(np.asarray(memory.recent_requests) >= 0)
    # a function that had requests has a positive average, and the total weight is bounded
    had = requests > 0
    assert np.all(np.asarray(memory.recent_requests)[had] > 0)
    assert float(np.sum(memory.recent_requests)) <= weight_of_all * float(np.sum(requests)) + 1e-3
    assert np.all(np.asarray(memory.recent_violations) <= np.asarray(memory.recent_requests) + 1e-5)


def test_the_kpa_at_a_target_is_one_constant_choice_of_the_policy(small):
    """The frozen policy that always picks (target 0.5, min scale 0, 1 core) scales every
    function exactly as the KPA at target 0.5 does."""
    pop, platform = small
    policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS)
    policy = deploy(certain(policy, TargetActions().index_of(0.5, 0, 1.0)), pop, greedy=True)
    functions, arrivals = pop.inputs()
    kwargs = dict(minutes=pop.minutes, initial_containers=warm_start(pop, MAX_CONTAINERS))
    ours = simulate(platform, functions, arrivals, policy, jax.random.key(3), **kwargs)
    kpa = simulate(platform, functions, arrivals, KPA(KPAConfig(target=0.5)), jax.random.key(3), **kwargs)
    for name in ("requests", "violations", "allocated", "cold_starts"):
        np.testing.assert_allclose(np.asarray(ours.per_function[name]), np.asarray(kpa.per_function[name]),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    assert float(np.sum(kpa.per_function["cold_starts"])) > 0          # the KPA did scale


def test_a_min_scale_action_keeps_a_container_for_every_function(small):
    pop, platform = small
    policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS)
    keep = deploy(certain(policy, TargetActions().index_of(1.0, 1, 1.0)), pop, greedy=True)
    drop = deploy(certain(policy, TargetActions().index_of(1.0, 0, 1.0)), pop, greedy=True)
    functions, arrivals = pop.inputs()
    results = [simulate(platform, functions, arrivals, p, jax.random.key(0), minutes=pop.minutes)
               for p in (keep, drop)]
    kept, dropped = (np.asarray(r.state.ready + r.state.starting.sum(1)) for r in results)
    assert kept.min() >= 1
    assert (dropped == 0).any()                                           # some idle function went to zero


def test_a_move_action_adds_its_step_at_every_decision(small):
    pop, platform = small
    policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS, actions=MoveActions(),
                                 decision_period=60.0)
    up = deploy(certain(policy, 2), pop, greedy=True)                     # step +1
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, up, jax.random.key(0), minutes=5, initial_containers=1.0)
    # decisions at t = 0, 60, ..., 240 s: five moves of +1 from one container
    np.testing.assert_allclose(np.asarray(result.state.ready + result.state.starting.sum(1)), 6.0)


def test_a_function_at_zero_containers_gets_one_when_a_request_waits(small):
    """Moves: the policy that always removes a container still cannot starve a function
    (the activator scales it from zero), so every request is eventually served."""
    pop, platform = small
    policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS, actions=MoveActions())
    down = deploy(certain(policy, 0), pop, greedy=True)                   # step -1
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, down, jax.random.key(0), minutes=pop.minutes)
    served = np.asarray(result.per_function["requests"])
    busy = np.asarray(pop.workload.counts[pop.assignment, pop.start:pop.start + pop.minutes].sum(1)) > 0
    assert served[busy].min() > 0


def _one_step(policy, phi_prev, phi_now, action, cost, arrivals_total, decisions, backlog=None):
    """The learner after one ``_learn`` call from a hand-made memory."""
    learner, memory, history, _ = policy.init(phi_prev.shape[0], jax.random.key(0))
    memory = memory._replace(phi=phi_prev, action=action, cost=cost)
    if backlog is not None:
        memory = memory._replace(backlog=backlog)
    logits = phi_now @ learner.theta
    log_pi = jax.nn.log_softmax(logits, axis=1)
    return policy._learn(learner, history, memory, jnp.int32(decisions), phi_now, jnp.exp(log_pi), log_pi,
                         arrivals_total)


@pytest.mark.parametrize("shaping", [False, True])
def test_the_critic_step_is_soft_expected_sarsa_with_per_action_averages(shaping):
    rng = np.random.default_rng(1)
    features = ObservationFeatures(singles=("load",), grids=(), centers=2)       # 3 features
    actions = TargetActions(targets=(0.5, 1.0), min_scale=(0,))                  # 2 actions
    n, f, a = 5, features.num_features, actions.num_actions
    rows = lambda: jnp.asarray(rng.uniform(0.1, 1, (n, f)) / np.sqrt(f), jnp.float32)
    phi_prev, phi_now = rows(), rows()
    theta = jnp.asarray(rng.normal(size=(f, a)), jnp.float32)
    w0, v0 = jnp.asarray(rng.normal(size=(f, a)), jnp.float32), jnp.asarray(rng.normal(size=f), jnp.float32)
    policy = OnlineNAC(theta, w0, v0, jnp.ones(n), jnp.full(n, 5.0), price=0.1, discount=0.8, temperature=0.05,
                       critic_rate=0.3, actor_rate=1.0, actions=actions, features=features, actor_every=100,
                       backlog_shaping=shaping)
    action = jnp.asarray([0, 1, 1, 0, 1], jnp.int32)
    cost = jnp.asarray([3.0, 0.0, 1.0, 8.0, 2.0], jnp.float32)
    arrivals_total = jnp.asarray([10.0, 0.0, 40.0, 4.0, 2.0], jnp.float32)
    backlog = jnp.asarray([[0.0, 5.0, 0.0, 2.0, 0.0], [4.0, 0.0, 0.0, 2.0, 9.0]], jnp.float32)  # start, end
    learner, _ = _one_step(policy, phi_prev, phi_now, action, cost, arrivals_total, decisions=2, backlog=backlog)

    P, Q, T, W, V = (np.asarray(x, np.float64) for x in (phi_prev, phi_now, theta, w0, v0))
    scale = np.maximum(np.asarray(arrivals_total) / 2 * (1 + 0.1 * 1.0), 1.0)
    before, after = np.asarray(backlog, np.float64)
    reward = -(np.asarray(cost) + shaping * (0.8 * after - before)) / scale   # with the backlog's shaping
    logits = Q @ T
    log_pi = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    q_next = Q @ W + (Q @ V)[:, None]
    v_next = (np.exp(log_pi) * (q_next - 0.05 * log_pi)).sum(1)
    act = np.asarray(action)
    q_prev = (P @ W)[np.arange(n), act] + P @ V
    delta = reward + 0.8 * v_next - q_prev
    onehot = np.eye(a)[act]
    w = W + 0.5 * 0.3 * (P.T @ (delta[:, None] * onehot)) / np.maximum(onehot.sum(0), 1)
    v = V + 0.5 * 0.3 * (P.T @ delta) / n
    np.testing.assert_allclose(np.asarray(learner.w), w, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(np.asarray(learner.v), v, rtol=2e-5, atol=2e-6)
    assert int(learner.steps) == 1 and float(learner.td_sum) == pytest.approx(np.mean(delta ** 2), rel=1e-4)


def test_the_first_decision_has_no_transition_to_learn_from():
    features = ObservationFeatures(singles=("load",), grids=(), centers=2)
    policy = OnlineNAC.untrained(jnp.ones(3), jnp.full(3, 5.0), features=features)
    phi = jnp.full((3, features.num_features), 1 / np.sqrt(features.num_features), jnp.float32)
    learner, _ = _one_step(policy, phi, phi, jnp.zeros(3, jnp.int32), jnp.ones(3), jnp.ones(3), decisions=0)
    assert float(jnp.abs(learner.w).max()) == 0 and float(jnp.abs(learner.v).max()) == 0 and int(learner.steps) == 0


def test_the_actor_step_at_a_phase_end_is_the_natural_gradient_step_with_the_mean_critic():
    features = ObservationFeatures(singles=("load",), grids=(), centers=2)
    actions = TargetActions(targets=(0.5, 1.0), min_scale=(0,))
    rng = np.random.default_rng(2)
    f, a = features.num_features, actions.num_actions
    theta = jnp.asarray(rng.normal(size=(f, a)), jnp.float32)
    policy = OnlineNAC(theta, jnp.zeros((f, a)), jnp.zeros(f), jnp.ones(4), jnp.full(4, 5.0), discount=0.5,
                       temperature=0.1, actor_rate=2.0, actions=actions, features=features, actor_every=3)
    learner, memory, history, _ = policy.init(4, jax.random.key(0))
    learner = learner._replace(w_sum=jnp.asarray(rng.normal(size=(f, a)), jnp.float32), steps=jnp.int32(2))
    phi = jnp.asarray(rng.uniform(0.1, 1, (4, f)) / np.sqrt(f), jnp.float32)
    memory = memory._replace(phi=phi, cost=jnp.asarray([1.0, 0.0, 2.0, 0.5]))
    log_pi = jax.nn.log_softmax(phi @ theta, axis=1)
    args = (memory, jnp.int32(3), phi, jnp.exp(log_pi), log_pi, jnp.ones(4))
    after, recorded = policy._learn(learner, history, *args)               # decision 3 ends a phase of 3
    critic_only, _ = dataclasses.replace(policy, actor_every=10 ** 6)._learn(learner, history, *args)
    w_bar = critic_only.w_sum / 3                                           # two earlier iterates and this one
    expected = natural_actor_step(theta, w_bar, 2.0, 0.1, 1 / (1 - 0.5))
    np.testing.assert_allclose(np.asarray(after.theta), np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(after.w), np.asarray(critic_only.w))
    assert int(recorded.phases) == 1 and int(after.steps) == 0 and float(jnp.abs(after.w_sum).max()) == 0
    assert int(critic_only.steps) == 3 and np.array_equal(np.asarray(critic_only.theta), np.asarray(theta))


def test_training_records_a_phase_history_and_deploying_freezes_the_weights(small):
    pop, platform = small
    policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS, decision_period=10.0,
                                 actor_every=6)
    run = train_online(policy, platform, pop, 2, jax.random.key(0), MAX_CONTAINERS)
    phases = pop.minutes * 60 // 60                                          # one phase per 6 x 10 s
    assert len(run.history["td_error"]) == 2 * (phases - 1)                  # the first phase ends at decision 6
    assert np.all(np.isfinite(run.history["td_error"])) and np.all(run.history["entropy"] >= 0)
    assert np.all((run.history["policy_change"] >= 0) & (run.history["policy_change"] <= 1))
    assert float(jnp.abs(run.policy.theta).max()) > 0
    frozen = deploy(run.policy, pop)
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, frozen, jax.random.key(1), minutes=pop.minutes)
    np.testing.assert_array_equal(np.asarray(result.policy_state[0].theta), np.asarray(run.policy.theta))
    np.testing.assert_array_equal(np.asarray(result.policy_state[0].w), np.asarray(run.policy.critic))
    assert int(result.policy_state[2].phases) == 0


def test_summaries_are_per_request_and_per_function(small):
    pop, platform = small
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, KPA(KPAConfig(target=0.5)), jax.random.key(0),
                      minutes=pop.minutes)
    s = summarize(result, pop, price=0.01)
    pf = {k: float(np.sum(v)) for k, v in result.per_function.items()}
    assert s["slo_violations"] == pytest.approx(pf["violations"] / pf["requests"])
    assert s["allocated_cores"] == pytest.approx(pf["allocated"] / 24 / (20 * 60))
    assert s["objective"] == pytest.approx((pf["violations"] + 0.01 * pf["allocated"]) / pf["requests"])
    # run_policy is simulate + summarize from the warm start
    warm = simulate(platform, functions, arrivals, KPA(KPAConfig(target=0.5)), jax.random.key(0), minutes=pop.minutes,
                    initial_containers=warm_start(pop, MAX_CONTAINERS))
    assert run_policy(platform, pop, KPA(KPAConfig(target=0.5)), jax.random.key(0), MAX_CONTAINERS,
                      0.01) == summarize(warm, pop, price=0.01)


@pytest.mark.parametrize("change, message", [
    (dict(discount=1.0), "discount must be in"),
    (dict(temperature=0.5, actor_rate=25.0), "actor step needs"),
    (dict(decision_period=3.0), "decision_period must be a positive multiple"),
    (dict(actor_every=0), "actor_every must be"),
    (dict(exploration=1.5), "exploration must be"),
    (dict(memory=True, memory_seconds=30.0), "memory_seconds must be at least the decision period"),
    (dict(memory=True, features=ObservationFeatures()), "memory is True but its features do not read"),
    (dict(features=memory_features()), "memory is False but its features read"),
])
def test_bad_learning_settings_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        OnlineNAC.untrained(jnp.ones(3), jnp.full(3, 5.0), **change)


def test_a_policy_for_another_population_must_be_rebound(small):
    pop, platform = small
    policy = OnlineNAC.untrained(np.ones(7), np.full(7, 5.0))
    functions, arrivals = pop.inputs()
    with pytest.raises(ValueError, match="for_functions"):
        simulate(platform, functions, arrivals, policy, jax.random.key(0), minutes=1)
    with pytest.raises(ValueError, match="theta and critic must be"):
        dataclasses.replace(policy, theta=jnp.zeros((3, 3))).check()


# ------------------------------------------------------------------ the neural learner

def test_the_untrained_neural_policy_is_uniform_and_its_steps_descend_their_losses():
    """The actor's output layer starts at zero (pi uniform); one critic step lowers the
    semi-gradient TD loss; the actor's fit at a phase end moves pi towards the natural
    target pi^(1 - eta lambda h) exp(eta h Q) (its KL to the target falls)."""
    from flax import nnx

    from mfg.serverless.learned_neural import NeuralOnlineNAC

    n, rng = 64, np.random.default_rng(0)
    policy = NeuralOnlineNAC.untrained(jnp.ones(n), jnp.full(n, 5.0), hidden=(16,), critic_steps=5,
                                       critic_rate=1e-2, actor_steps=30, actor_every=2, actor_rate=2.0,
                                       temperature=0.01)
    learner, memory, history, _ = policy.init(n, jax.random.key(0))
    x = jnp.asarray(rng.uniform(-1, 1, (n, len(OBSERVATIONS))), jnp.float32)
    logits = policy._logits(learner, x)
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits, axis=1)), 1 / policy.actions.num_actions, atol=1e-6)
    memory = memory._replace(phi=x, action=jnp.asarray(rng.integers(0, 12, n), jnp.int32),
                             cost=jnp.asarray(rng.uniform(0, 3, n), jnp.float32))
    log_pi = jax.nn.log_softmax(logits, axis=1)
    graph = policy._graph

    def td_loss(critic):
        reward = policy._reward(memory, jnp.int32(1), jnp.ones(n))
        q_next = nnx.merge(graph, learner.critic)(x)
        target = reward + policy.discount * jnp.sum(jnp.exp(log_pi) * (q_next - 0.01 * log_pi), axis=1)
        q = nnx.merge(graph, critic)(x)[jnp.arange(n), memory.action]
        return float(jnp.mean((q - target) ** 2))

    stepped, _ = policy._learn(learner, history, memory, jnp.int32(1), x, jnp.exp(log_pi), log_pi, jnp.ones(n))
    assert td_loss(stepped.critic) < td_loss(learner.critic)
    assert float(stepped.td_sum) == pytest.approx(td_loss(learner.critic), rel=1e-4)

    after, recorded = policy._learn(stepped, history, memory, jnp.int32(2), x, jnp.exp(log_pi), log_pi, jnp.ones(n))
    q = nnx.merge(graph, after.critic)(x)
    goal = jax.nn.softmax((1 - 2.0 / 0.1 * 0.01) * log_pi + 2.0 / 0.1 * q, axis=1)
    kl = lambda logits: float(jnp.mean(jnp.sum(goal * (jnp.log(goal) - jax.nn.log_softmax(logits, axis=1)), axis=1)))
    assert kl(policy._logits(after, x)) < 0.9 * kl(logits)
    assert int(recorded.phases) == 1 and float(recorded.policy_change[0]) > 0


def test_the_neural_policy_trains_in_the_simulator_and_deploys_frozen(small):
    from mfg.serverless.learned_neural import NeuralOnlineNAC

    pop, platform = small
    policy = NeuralOnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS, hidden=(16, 16),
                                       decision_period=10.0, actor_every=6)
    run = train_online(policy, platform, pop, 1, jax.random.key(0), MAX_CONTAINERS)
    assert len(run.history["td_error"]) == pop.minutes - 1 and np.all(np.isfinite(run.history["td_error"]))
    frozen = deploy(run.policy, pop)
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, frozen, jax.random.key(1), minutes=pop.minutes)
    for before, after in zip(jax.tree.leaves(run.policy.theta), jax.tree.leaves(result.policy_state[0].actor)):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    with pytest.raises(ValueError, match="critic_steps must be an int >= 1"):
        NeuralOnlineNAC.untrained(np.ones(3), np.full(3, 5.0), critic_steps=0)


# ------------------------------------------- the coarse-grained game's policy deployed

def test_a_constant_tabular_target_policy_is_the_kpa_at_that_target(small):
    """``TabularTargets`` (mfg.serverless.target_game's policy on the tick simulator)
    that picks (target 0.5, min scale 0, 1 core) in every state scales as the KPA at 0.5."""
    from mfg.serverless.target_game import coarse_grain, tick_policy
    pop, platform = small
    coarse = coarse_grain(Workload(pop.workload.counts[pop.assignment], pop.service_mean, pop.slo))
    actions = TargetActions(cpu=(0.5, 1.0))
    policy = np.zeros((2 * coarse.num_types * coarse.num_bins, actions.num_actions))
    policy[:, actions.index_of(0.5, 0, 1.0)] = 1.0
    functions, arrivals = pop.inputs()
    kwargs = dict(minutes=pop.minutes, initial_containers=warm_start(pop, MAX_CONTAINERS))
    ours = simulate(platform, functions, arrivals, tick_policy(coarse, policy, pop.service_mean, actions),
                    jax.random.key(3), **kwargs)
    kpa = simulate(platform, functions, arrivals, KPA(KPAConfig(target=0.5)), jax.random.key(3), **kwargs)
    for name in ("requests", "violations", "allocated", "cold_starts"):
        np.testing.assert_allclose(np.asarray(ours.per_function[name]), np.asarray(kpa.per_function[name]),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_tabular_policy_reads_the_games_state_from_a_periods_arrivals(small):
    """Type from the service time, load bin as coarse_grain bins the trace's minutes, warm
    from the containers: the state index of decode_target_states."""
    from mfg.serverless.target_game import coarse_grain, decode_target_states, tick_policy, type_of
    pop, _ = small
    coarse = coarse_grain(Workload(pop.workload.counts[pop.assignment], pop.service_mean, pop.slo))
    actions = TargetActions(cpu=(0.5, 1.0))
    uniform = np.full((2 * coarse.num_types * coarse.num_bins, actions.num_actions), 1.0 / actions.num_actions)
    policy = tick_policy(coarse, uniform, pop.service_mean, actions)
    minute = pop.workload.counts[pop.assignment, pop.start]
    warm = np.arange(pop.num_functions) % 2 == 0
    states = decode_target_states(coarse.num_types, coarse.num_bins)[np.asarray(
        policy.states(jnp.asarray(minute, jnp.float32), jnp.asarray(warm)))]
    types = type_of(coarse, pop.service_mean)
    np.testing.assert_array_equal(states[:, 0], types)
    np.testing.assert_array_equal(states[:, 2], warm)
    # coarse_grain's bins (searchsorted: the edges below log rate); the edges are logs of
    # observed rates, so a rate on an edge may fall either side in float32
    log_rate = np.log(np.maximum(minute / 60.0, 1e-30))
    for i in range(pop.num_functions):
        edges = coarse.load_edges[types[i]]
        below = 1 + int(np.searchsorted(edges, log_rate[i] - 1e-5))
        above = 1 + int(np.searchsorted(edges, log_rate[i] + 1e-5))
        assert (states[i, 1] == 0) if minute[i] == 0 else (below <= states[i, 1] <= above), (i, minute[i])
    with pytest.raises(ValueError, match="policy has shape"):
        tick_policy(coarse, uniform[:-1], pop.service_mean, actions)


def test_coarse_state_features_read_the_state_the_tabular_policy_reads(small):
    """CoarseStateFeatures one-hot exactly the state index TabularTargets reads (type from
    the service time, load bin from the period's arrivals, warm from the containers)."""
    from mfg.serverless.learned import CoarseStateFeatures
    from mfg.serverless.target_game import coarse_grain, tick_policy
    pop, _ = small
    coarse = coarse_grain(Workload(pop.workload.counts[pop.assignment], pop.service_mean, pop.slo))
    features = CoarseStateFeatures.of(coarse)
    actions = TargetActions(cpu=(0.5, 1.0))
    assert features.num_features == 2 * coarse.num_types * coarse.num_bins
    uniform = np.full((features.num_features, actions.num_actions), 1.0 / actions.num_actions)
    tabular = tick_policy(coarse, uniform, pop.service_mean, actions)
    arrived = jnp.asarray(pop.workload.counts[pop.assignment, pop.start + 3], jnp.float32)
    containers = jnp.asarray(np.arange(pop.num_functions) % 3, jnp.float32)
    obs = observe(arrived, arrived, jnp.zeros_like(arrived), containers, jnp.float32(1.0), jnp.float32(0.0),
                  jnp.asarray(pop.slo), jnp.asarray(pop.service_mean), MAX_CONTAINERS)
    rows = np.asarray(features.rows(obs, jnp.asarray(pop.service_mean), arrived / 60.0))   # per 60 s period
    expected = np.asarray(tabular.states(arrived, containers > 0))
    np.testing.assert_array_equal(rows.argmax(1), expected)
    np.testing.assert_array_equal(rows.sum(1), 1.0)
    with pytest.raises(ValueError, match="K rows of load_edges"):
        CoarseStateFeatures((0.1,), ((0.0, 1.0), (0.0,)))


def test_an_online_policy_on_coarse_state_features_is_the_games_tabular_policy(small):
    """With theta = log pi (pi a policy of the coarse game) the deployed greedy OnlineNAC on
    CoarseStateFeatures runs as TabularTargets of pi does: the same decisions, the same
    episode."""
    from mfg.serverless.learned import CoarseStateFeatures
    from mfg.serverless.target_game import coarse_grain, tick_policy
    pop, platform = small
    coarse = coarse_grain(Workload(pop.workload.counts[pop.assignment], pop.service_mean, pop.slo))
    features = CoarseStateFeatures.of(coarse)
    actions = TargetActions(cpu=(0.5, 1.0))
    # a policy that differs between states (a different action in every state)
    pi = np.full((features.num_features, actions.num_actions), 0.01)
    pi[np.arange(features.num_features), (7 * np.arange(features.num_features)) % actions.num_actions] = 1.0
    pi /= pi.sum(1, keepdims=True)
    online = OnlineNAC.untrained(pop.service_mean, pop.slo, features=features, actions=actions)
    online = deploy(dataclasses.replace(online, theta=jnp.asarray(np.log(pi), jnp.float32)), pop, greedy=True)
    functions, arrivals = pop.inputs()
    kwargs = dict(minutes=pop.minutes, initial_containers=warm_start(pop, MAX_CONTAINERS))
    ours = simulate(platform, functions, arrivals, online, jax.random.key(5), **kwargs)
    game = simulate(platform, functions, arrivals, tick_policy(coarse, pi, pop.service_mean, actions),
                    jax.random.key(5), **kwargs)
    assert float(np.asarray(game.per_function["allocated"]).std()) > 0      # the states do differ
    for name in ("requests", "violations", "allocated", "cold_starts"):
        np.testing.assert_allclose(np.asarray(ours.per_function[name]), np.asarray(game.per_function[name]),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_baselines_frontier_is_the_pareto_frontier_of_its_sweeps():
    """Two sweeps of one baseline (e.g. at 1 and 0.5 cores per container) form one
    frontier: the points no other beats on both cores and violations, joined linearly;
    nothing is extrapolated below the cheapest point."""
    from mfg.serverless.comparison import frontier_at, verdicts
    one_core = [(4.0, 0.05), (6.0, 0.04), (12.0, 0.024)]
    half_core = [(2.0, 0.05), (3.0, 0.04), (6.0, 0.024)]
    points = one_core + half_core
    assert frontier_at(points, 3.0) == pytest.approx(0.04)
    assert frontier_at(points, 4.5) == pytest.approx(0.04 - 0.016 * 1.5 / 3.0)   # between (3, .04) and (6, .024)
    assert frontier_at(points, 12.0) == pytest.approx(0.024)                      # a dominated point adds nothing
    assert frontier_at(points, 1.5) is None
    means = [{"policy": "KPA", "knob": f"k{i}", "allocated_cores": c, "slo_violations": v, "p99_latency": 1.0}
             for i, (c, v) in enumerate(points)]
    means.append({"policy": "MFG tabular targets", "knob": "x", "allocated_cores": 3.0, "slo_violations": 0.02,
                  "p99_latency": 1.0})
    (row,) = verdicts(means, learned_prefix="MFG", baselines=("KPA",))
    assert row["vs KPA"] == pytest.approx(0.5)


def test_the_congestion_price_charges_only_while_the_pressure_exceeds_one(small):
    """Issue 16, item 6: price + kappa max(0, P - 1) per core-second.  Without contention
    (infinite capacity, P = 0) kappa changes nothing; on a cluster far below the work the
    learner pays more and learns other weights."""
    pop, platform = small
    def trained(kappa, capacity):
        policy = OnlineNAC.untrained(pop.service_mean, pop.slo, max_containers=MAX_CONTAINERS, decision_period=10.0,
                                     actor_every=6, congestion_price=kappa)
        run = train_online(policy, dataclasses.replace(platform, capacity=capacity), pop, 1, jax.random.key(0),
                           MAX_CONTAINERS)
        return np.asarray(run.policy.theta), run.episodes[0]
    free, free_summary = trained(0.0, float("inf"))
    charged, charged_summary = trained(1.0, float("inf"))
    np.testing.assert_array_equal(free, charged)
    assert charged_summary == free_summary
    tight = 0.2 * pop.capacity("tight")
    flat, _ = trained(0.0, tight)
    priced, priced_summary = trained(1.0, tight)
    assert priced_summary["mean_pressure"] > 1
    assert np.abs(flat - priced).max() > 1e-3


def test_q_learning_learns_on_another_day_of_the_same_functions_and_is_tested_frozen(small):
    """Issue 16, item 3: the per-function table learns on day 1 of the evaluation's own
    functions (row for row) and is evaluated, frozen, on day 0; the evaluation changes no
    entry of the table, and a table for other functions is refused."""
    from mfg.serverless.comparison import train_q_learning
    from mfg.serverless.policies import QLearningKPA

    pop, platform = small
    tomorrow = Workload.from_trace(generate_functions(60, seed=0, day=1), max_containers=MAX_CONTAINERS,
                                   keep_idle=True)
    train = population(tomorrow, 24, 0, start=17 * 60, minutes=20)
    np.testing.assert_array_equal(train.assignment, pop.assignment)
    assert not np.array_equal(train.workload.counts[train.assignment], pop.workload.counts[pop.assignment])
    policy = QLearningKPA.untrained(pop.num_functions, np.log([0.1, 1.0]), targets=(0.3, 0.7), price=0.02)
    frozen, seconds = train_q_learning(policy, platform, train, 1, jax.random.key(0), MAX_CONTAINERS)
    assert seconds > 0 and frozen.learning_rate == 0 and frozen.exploration == 0
    learned = np.asarray(frozen.q_values)
    assert np.count_nonzero(learned) > 0
    functions, arrivals = pop.inputs()
    result = simulate(platform, functions, arrivals, frozen, jax.random.key(1), minutes=pop.minutes,
                      initial_containers=warm_start(pop, MAX_CONTAINERS))
    np.testing.assert_array_equal(np.asarray(result.policy_state[0]), learned)
    other = population(tomorrow, 10, 0, start=17 * 60, minutes=20)
    with pytest.raises(ValueError, match="the Q table holds 24 functions, the simulator 10"):
        train_q_learning(policy, platform, other, 1, jax.random.key(0), MAX_CONTAINERS)
    with pytest.raises(ValueError, match="episodes must be an int >= 1"):
        train_q_learning(policy, platform, train, 0, jax.random.key(0), MAX_CONTAINERS)
