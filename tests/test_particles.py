"""The particle form of the serverless game: its latency model and metrics against closed
forms, and agreement with the tabular form for the same policy at large N."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg.serverless.autoscalers import StaticPolicy, TabularPolicy
from mfg.serverless.cluster import ClusterModel, P99Table, p99_latency, service_rate
from mfg.serverless.evaluation import cluster, pool_clusters, summarize
from mfg.serverless.game import cluster_model_of, serverless
from mfg.serverless.particles import MarkovLoad, TraceLoad, simulate, simulate_clusters
from mfg.serverless.queueing import mean_response_time, response_time_survival
from mfg.transitions import to_dense
from experiments.serverless import load_edges

SMALL = dict(max_containers=4, max_cpu_steps=3, num_load_bins=3)


def test_interpolated_p99_matches_the_exact_quantile():
    model = ClusterModel()
    table = P99Table.build(model.max_containers)
    n = np.repeat(np.arange(1, 9), 50)
    rho = np.tile(np.linspace(0.0, 0.995, 50), 8)
    mu = 3.0
    lam = rho * n * mu
    exact = np.asarray(p99_latency(model, n, jnp.asarray(lam), jnp.asarray(mu), iterations=100))
    approx = np.asarray(table(jnp.asarray(n), jnp.asarray(lam), jnp.asarray(mu)))
    np.testing.assert_allclose(approx, exact, rtol=1e-4)
    assert np.isinf(np.asarray(table(jnp.asarray(2), jnp.asarray(7.0), jnp.asarray(3.0))))   # unstable


def test_a_static_allocation_on_a_constant_load_gives_the_queueing_metrics():
    model = ClusterModel()
    rate, containers, cpu = 10.0, 3, 6
    load = TraceLoad(np.full((1, 30), rate), np.zeros(4, np.int64))
    result = simulate(model, load, StaticPolicy(containers, cpu), jax.random.key(0),
                      initial_containers=containers, initial_cpu_steps=cpu, dtype=jnp.float64)
    metrics = summarize(result, model)["overall"]
    pressure = containers * cpu * model.cpu_step / model.capacity          # 0.5625 < knee: no slowdown
    mu = float(service_rate(model, cpu, pressure))
    assert mu == pytest.approx(cpu * model.cpu_step * model.service_rate_per_core)
    assert metrics["slo_violation_rate"] == pytest.approx(
        float(response_time_survival(model.slo, containers, rate, mu)), rel=1e-6)
    assert metrics["mean_latency"] == pytest.approx(float(mean_response_time(containers, rate, mu)), rel=1e-6)
    assert metrics["allocated_cpu"] == pytest.approx(containers * cpu * model.cpu_step)
    assert metrics["utilization"] == pytest.approx(rate / (containers * mu), rel=1e-9)
    assert metrics["cold_starts_per_hour"] == 0.0
    exact_p99 = float(p99_latency(model, containers, rate, mu))
    assert metrics["p99_latency"] == pytest.approx(exact_p99, rel=0.05)    # histogram resolution
    histogram = summarize(result, model)["histogram"]
    assert histogram.sum() == pytest.approx(4 * 30 * 60 * rate, rel=1e-9)  # every request counted once


def test_an_overloaded_queue_sends_every_request_to_the_timeout():
    model = ClusterModel()
    load = TraceLoad(np.full((1, 5), 50.0), np.zeros(2, np.int64))            # 50 req/s on one 1/8-core container
    metrics = summarize(simulate(model, load, StaticPolicy(1, 1), jax.random.key(0)), model)["overall"]
    assert metrics["slo_violation_rate"] == pytest.approx(1.0)
    assert metrics["mean_latency"] == pytest.approx(model.timeout)
    assert metrics["p99_latency"] == pytest.approx(model.timeout)


def test_tabular_and_particle_forms_agree_for_the_same_policy_at_large_n():
    """Per-step mean reward and allocation of 100,000 particles vs the exact mean-field flow
    (the per-particle reward has a standard deviation below 0.8: 8e-3 is > 3 standard errors)."""
    game = serverless(**SMALL)
    model = cluster_model_of(game)
    S, A = game.num_states, game.num_actions
    policy = np.asarray(jax.random.dirichlet(jax.random.key(1), jnp.ones(A), (S,)))
    steps = 25
    # Exact flow: mu_{t+1} = sum_{s, a} mu_t(s) pi(a|s) P(s' | s, a); reward and allocation at each t.
    states = np.asarray(game.params["states"])
    mu = np.asarray(game.initial_distribution)
    exact_reward, exact_allocation = [], []
    for _ in range(steps + 1):
        joint = mu[:, None] * policy
        reward = np.asarray(game.reward(0, jnp.asarray(joint)))
        exact_reward.append((joint * reward).sum())
        exact_allocation.append((joint.sum(1) * states[:, 1] * states[:, 2]).sum() * model.cpu_step)
        kernel = np.asarray(to_dense(game.transition(0, jnp.asarray(joint)), S).probs)
        mu = np.einsum("sa,sat->t", joint, kernel)
    # Particles: the same load chain, policy and initial allocation.
    levels = np.asarray(game.params["levels"])
    load_marginal = np.bincount(states[:, 0].astype(int), weights=np.asarray(game.initial_distribution))
    chain = _load_chain_of(game)
    load = MarkovLoad(levels, chain, load_marginal, 100_000, steps)
    result = simulate(model, load, TabularPolicy(policy, load_edges(game), 4, 3), jax.random.key(2),
                      dtype=jnp.float64)
    np.testing.assert_allclose(np.asarray(result.series["reward"]), exact_reward[:steps], atol=8e-3)
    # The simulator records the allocation each step is served with (after the move): the flow's next one.
    np.testing.assert_allclose(np.asarray(result.series["allocated"]), exact_allocation[1:], rtol=0.02)


def _load_chain_of(game):
    """The [L, L] load chain the tabular kernel was built from (the rows of a no-op move)."""
    states = np.asarray(game.params["states"])
    L = int(states[:, 0].max()) + 1
    kernel = np.asarray(to_dense(game.transition(0, jnp.zeros((game.num_states, game.num_actions))),
                                 game.num_states).probs)
    chain = np.zeros((L, L))
    for l in range(L):
        s = np.flatnonzero((states[:, 0] == l) & (states[:, 1] == 1) & (states[:, 2] == 1) & (states[:, 3] == 0))[0]
        chain[l] = np.bincount(states[:, 0].astype(int), weights=kernel[s, 0], minlength=L)
    return chain


def _heavy_tailed_pool(functions=40, minutes=30, seed=0):
    """[F, T] rates (requests/s): log-normal levels over three orders of magnitude, some idle functions."""
    rng = np.random.default_rng(seed)
    levels = np.exp(rng.normal(0.0, 1.5, functions))[:, None]
    rates = levels * rng.gamma(4.0, 0.25, (functions, minutes))
    rates[:3] = 0.0
    return rates


def test_partition_replays_the_same_functions_equally_often_at_every_cluster_size():
    rates = _heavy_tailed_pool()
    small = TraceLoad.partition(rates, 25, 8, seed=3)
    large = TraceLoad.partition(rates, 200, 1, seed=3)
    assert [load.num_functions for load in small] == [25] * 8
    np.testing.assert_array_equal(np.sort(np.concatenate([load.assignment for load in small])),
                                  np.sort(large[0].assignment))
    counts = np.bincount(large[0].assignment, minlength=37)          # 37 active functions
    assert counts.min() >= 200 // 37 and counts.max() <= 200 // 37 + 1
    assert large[0].rates.shape[0] == 37                              # idle functions dropped
    with pytest.raises(ValueError, match="clusters"):
        TraceLoad.partition(rates, 25, 0)


def test_independent_clusters_run_exactly_as_separate_simulations():
    """simulate_clusters = simulate of each cluster with its own key: its own functions, its own mean field."""
    game = serverless(**SMALL)
    model = cluster_model_of(game)
    policy = np.asarray(jax.random.dirichlet(jax.random.key(4), jnp.ones(game.num_actions), (game.num_states,)))
    tabular = TabularPolicy(policy, load_edges(game), 4, 3)
    loads = TraceLoad.partition(_heavy_tailed_pool(), 12, 3, seed=0)
    key = jax.random.key(5)
    together = simulate_clusters(model, loads, tabular, key, num_steps=20)
    assert together.per_function["requests"].shape == (3, 12)
    for index, (load, cluster_key) in enumerate(zip(loads, jax.random.split(key, 3))):
        alone = simulate(model, load, tabular, cluster_key, num_steps=20)
        for name, value in alone.per_function.items():
            np.testing.assert_allclose(together.per_function[name][index], value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(together.series["pressure"][index], alone.series["pressure"], rtol=1e-6)
    # The clusters differ (different functions), so each had its own pressure path.
    assert not np.allclose(together.series["pressure"][0], together.series["pressure"][1])
    # Pooled, they are one population of 36 functions: ratio metrics are ratios of the summed counts.
    pooled = summarize(pool_clusters(together), model)
    violations = np.asarray(together.per_function["violations"]).sum()
    requests = np.asarray(together.per_function["requests"]).sum()
    assert pooled["per_function"]["requests"].shape == (36,)
    assert pooled["overall"]["slo_violation_rate"] == pytest.approx(violations / requests, rel=1e-6)
    np.testing.assert_allclose(summarize(cluster(together, 2), model)["overall"]["allocated_cpu"],
                               summarize(simulate(model, loads[2], tabular, jax.random.split(key, 3)[2],
                                                  num_steps=20), model)["overall"]["allocated_cpu"], rtol=1e-6)


def test_independent_clusters_must_share_the_pool_and_the_size():
    model = ClusterModel()
    tabular_loads = TraceLoad.partition(_heavy_tailed_pool(), 10, 2)
    other_pool = TraceLoad.partition(_heavy_tailed_pool(seed=1), 10, 1)
    with pytest.raises(ValueError, match="same rate pool"):
        simulate_clusters(model, tabular_loads + other_pool, StaticPolicy(1), jax.random.key(0))
    with pytest.raises(ValueError, match="same start and number of functions"):
        simulate_clusters(model, tabular_loads + TraceLoad.partition(_heavy_tailed_pool(), 5, 1),
                          StaticPolicy(1), jax.random.key(0))
