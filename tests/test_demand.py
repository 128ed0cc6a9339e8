"""The trace at a platform's resolution (mfg/serverless/demand.py): arrivals per tick keep
every minute's count and have the multinomial (Poisson) or Dirichlet-multinomial spread;
service times and SLOs follow their documented rules; bad values are refused."""

import jax
import numpy as np
import pytest

from mfg.serverless.demand import (DEFAULT_SERVICE_MEAN, service_means, slo_of, tick_arrivals, ticks_per_minute,
                                     violation_floor)
from serverless_des import simulate


def test_ticks_keep_every_minute_count_exactly():
    counts = np.array([[0, 1, 7, 1000], [3, 0, 59, 12345]])
    ticks = np.asarray(tick_arrivals(counts, 2.0, jax.random.key(0)))
    assert ticks.shape == (2, 4 * 30) and ticks.min() >= 0
    np.testing.assert_array_equal(ticks.reshape(2, 4, 30).sum(-1), counts)


@pytest.mark.parametrize("dispersion", [None, 0.5])
def test_tick_counts_have_the_multinomial_or_dirichlet_multinomial_spread(dispersion):
    """Mean n / k per tick; variance n p (1 - p) with p = 1 / k, times (n + alpha k) / (1 + alpha k)
    for the Dirichlet(alpha) shares."""
    n, k, draws = 600, 30, 4000
    ticks = np.asarray(tick_arrivals(np.full((draws, 1), n), 2.0, jax.random.key(1), dispersion))
    p = 1 / k
    variance = n * p * (1 - p) * (1 if dispersion is None else (n + dispersion * k) / (1 + dispersion * k))
    np.testing.assert_allclose(ticks.mean(), n / k, rtol=1e-6)    # exact: every minute sums to n
    assert abs(ticks.var() / variance - 1) < 0.06, (ticks.var(), variance)


def test_a_tick_that_does_not_divide_a_minute_is_refused():
    assert ticks_per_minute(2.0) == 30 and ticks_per_minute(15) == 4 and ticks_per_minute(60) == 1
    for dt in (7.0, 0.0, -2.0, float("nan"), 90.0, True):
        with pytest.raises(ValueError, match="dt"):
            ticks_per_minute(dt)
    with pytest.raises(ValueError, match="dispersion"):
        tick_arrivals(np.ones((1, 1)), 2.0, jax.random.key(0), dispersion=-1.0)


def test_service_times_and_slos_follow_the_documented_rules():
    durations = np.full((3, 11), np.nan)
    durations[0, 0], durations[1, 0] = 50.0, 4000.0           # ms; function 2 has no durations row
    means = service_means(durations)
    np.testing.assert_allclose(means, [0.05, 4.0, DEFAULT_SERVICE_MEAN])
    np.testing.assert_allclose(slo_of(means), [0.5, 20.0, 5.0])   # max(0.5 s, 5 x mean): the floor binds first
    np.testing.assert_allclose(violation_floor(means, slo_of(means)), [np.exp(-10), np.exp(-5), np.exp(-5)])
    durations[0, 0] = 0.0
    with pytest.raises(ValueError, match="function 0 has an average duration of 0.0 ms"):
        service_means(durations)
    with pytest.raises(ValueError, match="multiple > 0"):
        slo_of(means, multiple=-1)


def test_the_floor_is_what_an_uncontended_idle_function_violates():
    """The reference simulator with one warm container per request's worth of load: the
    share of requests over slo = 5 s matches exp(-5) within sampling error."""
    mean, slo = 1.0, 5.0
    out = simulate([[0.02]], 2e5, [mean], [1.0], capacity=10.0, schedule=[], horizon=2e5, initial=[4], seed=5)
    latency = np.array(out.latency)
    latency = latency[np.isfinite(latency)]
    assert abs(np.mean(latency > slo) / violation_floor(mean, slo) - 1) < 0.25      # ~4000 requests, ~27 over
