"""The M/M/c latency model against closed forms and a discrete-event simulation."""

import heapq
import math

import numpy as np
import pytest

from mfg.serverless.queueing import (erlang_c, mean_response_time, mean_wait, response_time_quantile,
                          response_time_survival)


def erlang_c_by_factorials(c, a):
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("c, a", [(1, 0.5), (2, 1.0), (3, 2.5), (8, 6.0), (20, 17.3), (40, 10.0)])
def test_erlang_c_matches_the_factorial_formula(c, a):
    np.testing.assert_allclose(float(erlang_c(c, a)), erlang_c_by_factorials(c, a), rtol=1e-12)


def test_textbook_values():
    assert abs(float(erlang_c(2, 1.0)) - 1 / 3) < 1e-14           # two servers, a = 1
    lam, mu = 3.0, 5.0                                              # M/M/1: C = rho
    assert abs(float(erlang_c(1, lam / mu)) - lam / mu) < 1e-14
    np.testing.assert_allclose(float(mean_response_time(1, lam, mu)), 1 / (mu - lam), rtol=1e-13)
    np.testing.assert_allclose(float(mean_wait(1, lam, mu)), lam / (mu * (mu - lam)), rtol=1e-13)
    # M/M/1 response time is Exp(mu - lam): p99 = ln(100) / (mu - lam).
    np.testing.assert_allclose(float(response_time_quantile(0.99, 1, lam, mu)), math.log(100) / (mu - lam),
                               rtol=1e-9)


def test_vectorized_and_unstable_queues():
    c = np.array([1, 2, 4, 4])
    lam = np.array([0.5, 1.0, 3.0, 5.0])          # the last one has lam > c mu
    w = np.asarray(mean_wait(c, lam, 1.0))
    assert np.all(np.isfinite(w[:3])) and np.isinf(w[3])
    assert float(erlang_c(4, 5.0)) == 1.0
    assert np.isinf(float(response_time_quantile(0.99, 4, 5.0, 1.0)))


@pytest.mark.parametrize("c, lam, mu", [(2, 1.5, 1.0), (4, 3.0, 1.0), (3, 1.0, 2.0)])
def test_quantile_inverts_the_survival_function(c, lam, mu):
    for q in (0.5, 0.9, 0.99):
        t = response_time_quantile(q, c, lam, mu)
        np.testing.assert_allclose(float(response_time_survival(t, c, lam, mu)), 1 - q, atol=1e-10)
    assert float(response_time_survival(0.0, c, lam, mu)) == pytest.approx(1.0)


def simulate(c, lam, mu, n=200_000, seed=0):
    """FCFS M/M/c: each arrival starts on the first server to free up."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    services = rng.exponential(1 / mu, n)
    free = [0.0] * c
    response = np.empty(n)
    for i in range(n):
        start = max(arrivals[i], heapq.heappop(free))
        heapq.heappush(free, start + services[i])
        response[i] = start + services[i] - arrivals[i]
    return response[n // 10:]


@pytest.mark.parametrize("c, lam, mu", [(3, 2.4, 1.0), (1, 0.7, 1.0)])
def test_formulas_agree_with_a_discrete_event_simulation(c, lam, mu):
    response = simulate(c, lam, mu)
    np.testing.assert_allclose(response.mean(), float(mean_response_time(c, lam, mu)), rtol=0.03)
    np.testing.assert_allclose(np.quantile(response, 0.99), float(response_time_quantile(0.99, c, lam, mu)),
                               rtol=0.05)
