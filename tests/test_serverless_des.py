"""The request-level reference simulator (tests/serverless_des.py) against closed forms:
before it judges the vectorized simulator, it must itself reproduce M/M/c (Erlang C),
the CPU-share slowdown of a saturated cluster, and a cold start's delay."""

import math

import numpy as np

from serverless_des import simulate


def erlang_c(c: int, a: float) -> float:
    """P(wait > 0) in M/M/c with offered load a = lam / mu (plain Python)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc_survival(t: float, c: int, lam: float, mu: float) -> float:
    """P(T > t), T the M/M/c response time (FIFO)."""
    wait = erlang_c(c, lam / mu)
    theta = c * mu - lam
    return (1 - wait) * math.exp(-mu * t) + wait * (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)


def test_steady_poisson_load_on_two_containers_is_erlang_c():
    lam, mean_service, c = 6.0, 0.25, 2                   # mu = 4/s per container, rho = 0.75
    horizon = 20000.0
    out = simulate([[lam]], horizon, [mean_service], [1.0], capacity=100.0, schedule=[], horizon=horizon,
                   initial=[c], seed=1)
    latency = np.array(out.latency)
    latency = latency[np.array(out.arrival) > 200.0]      # past the warm-up
    latency = latency[np.isfinite(latency)]
    mu = 1 / mean_service
    expected_mean = erlang_c(c, lam / mu) / (c * mu - lam) + 1 / mu
    assert abs(latency.mean() / expected_mean - 1) < 0.03, (latency.mean(), expected_mean)
    for t in (0.5, 1.0):      # farther out the estimate's noise exceeds 5% at this length
        assert abs(np.mean(latency > t) / mmc_survival(t, c, lam, mu) - 1) < 0.06, t


def test_a_saturated_cluster_shares_its_cores_by_cpu_shares():
    """Two functions, 4 one-core-request containers each, far more load than they can
    serve, on 4 cores: 8 busy containers want 8 cores, each gets half, so each function
    completes 4 x 0.5 / mean_service requests per second.  With requests of 1.0 and 0.25
    core the water level is theta = 4 / (4 + 1) = 0.8: 0.8 and 0.2 cores a container."""
    mean_service, horizon = 0.5, 2000.0

    def throughput(cpu, capacity):
        out = simulate([[12.0], [12.0]], horizon, [mean_service, mean_service], cpu, capacity=capacity, schedule=[],
                       horizon=horizon, initial=[4, 4], seed=2)
        done, function = np.isfinite(np.array(out.latency)), np.array(out.function)
        return [np.sum(done & (function == i)) / horizon for i in (0, 1)]

    for rate in throughput([1.0, 1.0], 4.0):
        assert abs(rate / (4 * 0.5 / mean_service) - 1) < 0.04, rate
    big, small = throughput([1.0, 0.25], 4.0)
    assert abs(big / (4 * 0.8 / mean_service) - 1) < 0.04, big
    assert abs(small / (4 * 0.2 / mean_service) - 1) < 0.06, small
    # with room for everyone (capacity 8) each function completes twice as many
    rate, _ = throughput([1.0, 1.0], 8.0)
    assert abs(rate / (4 / mean_service) - 1) < 0.04, rate


def test_a_function_scaled_from_zero_waits_for_the_cold_start():
    """No container until one is ordered at t = 5; the requests of [0, 5) wait for it
    (behind the activator) and it serves only after its 1 s cold start."""
    out = simulate([[0.4, 0.0]], 5.0, [0.01], [1.0], capacity=10.0, schedule=[(5.0, 0, 1)], horizon=60.0,
                   cold_start=1.0, initial=[0], seed=3)
    arrival, latency = np.array(out.arrival), np.array(out.latency)
    assert len(arrival) >= 1 and np.isfinite(latency).all()
    finish = arrival + latency
    assert finish.min() >= 6.0 and finish.min() < 6.2
    np.testing.assert_allclose(np.sort(finish)[0], 6.0, atol=0.1)


def test_a_small_cpu_request_does_not_slow_a_request_on_an_idle_node():
    """cpu.shares is a weight, not a limit: a container that requests 0.25 core runs its
    single-threaded request at one core while the node has cores to spare (M/M/1)."""
    out = simulate([[2.0]], 20000.0, [0.1], [0.25], capacity=10.0, schedule=[], horizon=20000.0, initial=[1], seed=4)
    latency = np.array(out.latency)
    latency = latency[np.isfinite(latency)]
    lam, mu = 2.0, 1 / 0.1
    assert abs(latency.mean() / (1 / (mu - lam)) - 1) < 0.05
