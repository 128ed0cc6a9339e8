"""The autoscaler baselines follow the rules they are named after, and the evaluation
harness computes quantiles and confidence intervals correctly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg.serverless.autoscalers import (ConcurrencyAutoscaler, HorizontalAutoscaler, QLearningAutoscaler, StaticPolicy,
                             TabularPolicy)
from mfg.serverless.evaluation import confidence_interval, histogram_quantile
from mfg.serverless.game import state_index
from mfg.serverless.particles import Observation


def observe(containers, utilization=0.5, concurrency=1.0, rate=1.0, cpu_steps=8, last_move=0, reward=0.0):
    n = jnp.atleast_1d(jnp.asarray(containers, jnp.int32))
    full = lambda x, dtype=jnp.float32: jnp.broadcast_to(jnp.asarray(x, dtype), n.shape)
    return Observation(rate=full(rate), containers=n, cpu_steps=full(cpu_steps, jnp.int32),
                       last_move=full(last_move, jnp.int32), utilization=full(utilization),
                       concurrency=full(concurrency), p99=full(0.1), reward=full(reward), pressure=jnp.float32(0.1))


KEY = jax.random.key(0)


def test_static_keeps_its_size():
    decision, _ = StaticPolicy(3, 5).decide((), observe([1, 7]), KEY)
    assert decision.containers.tolist() == [3, 3] and decision.cpu_steps.tolist() == [5, 5]


def test_hpa_scales_to_ceil_n_util_over_target_outside_the_tolerance():
    hpa = HorizontalAutoscaler(target_utilization=0.6)
    state = hpa.init(3, KEY)
    decision, _ = hpa.decide(state, observe([4, 4, 4], utilization=jnp.array([0.9, 0.63, 0.2])), KEY)
    # 4 * 0.9 / 0.6 = 6; 0.63 / 0.6 = 1.05 is inside the 10% band; 4 * 0.2 / 0.6 = 1.33 -> 2 (no
    # earlier recommendation holds it back yet).
    assert decision.containers.tolist() == [6, 4, 2]


def test_hpa_scale_down_waits_for_the_stabilization_window():
    hpa = HorizontalAutoscaler(target_utilization=0.5, stabilization_steps=3)
    state = hpa.init(1, KEY)
    sizes = []
    n = 4
    for step in range(5):
        utilization = 0.5 if step == 0 else 0.1            # first in band (recommend 4), then low (recommend 1)
        decision, state = hpa.decide(state, observe([n], utilization=utilization), KEY)
        n = int(decision.containers[0])
        sizes.append(n)
    # The recommendation 4 of step 0 stays in the 3-step window through step 2; at step 3 it is gone.
    assert sizes == [4, 4, 4, 1, 1]


def test_kpa_targets_concurrency_and_does_not_scale_down_in_panic():
    kpa = ConcurrencyAutoscaler(target_concurrency=0.7, stable_steps=2)
    state = kpa.init(1, KEY)
    decision, state = kpa.decide(state, observe([1], concurrency=3.0), KEY)
    assert int(decision.containers[0]) == 5                 # ceil(3 / 0.7); 5 >= 2 x 1: panic
    decision, state = kpa.decide(state, observe([5], concurrency=0.1), KEY)
    assert int(decision.containers[0]) == 5                 # panic: no scale-down within the stable window
    decision, state = kpa.decide(state, observe([5], concurrency=0.1), KEY)
    assert int(decision.containers[0]) == 1                 # stable mode again: ceil(mean(0.1, 0.1) / 0.7)


def test_q_learning_updates_with_the_previous_reward_and_freezes():
    q = QLearningAutoscaler.untrained(1, edges=np.array([0.0]), targets=(0.5, 1.0), learning_rate=0.5,
                                      discount=0.9, exploration=0.0)
    state = q.init(1, KEY)
    decision, state = q.decide(state, observe([1], rate=2.0, concurrency=1.0), KEY)   # bin 1 (log 2 > 0)
    assert int(decision.containers[0]) == 2                 # greedy tie -> target 0.5 -> ceil(1 / 0.5)
    _, state = q.decide(state, observe([2], rate=2.0, reward=1.0), KEY)
    table = np.asarray(state[0])
    assert table[0, 1, 0] == pytest.approx(0.5 * (1.0 + 0.9 * 0.0 - 0.0))
    frozen = q.frozen(state[0])
    assert frozen.learning_rate == 0.0 and frozen.exploration == 0.0
    with pytest.raises(ValueError, match="Q table holds 1 functions"):
        frozen.init(3, KEY)


def test_tabular_policy_reads_the_discretized_state_and_applies_the_move():
    max_n, max_c = 4, 3
    S = 2 * max_n * max_c * 3
    probabilities = np.full((S, 5), 1e-9)
    probabilities[:, 0] = 1.0
    s = state_index(1, 2, 3, 0, max_n, max_c)
    probabilities[s] = [0, 0, 0, 1.0, 0]                    # +1 CPU step at c = max: illegal
    s2 = state_index(0, 2, 3, 0, max_n, max_c)
    probabilities[s2] = [0, 1.0, 0, 0, 0]                   # +1 container
    policy = TabularPolicy(jnp.asarray(probabilities), jnp.array([0.0]), max_n, max_c, greedy=True)
    decision, _ = policy.decide((), observe([2, 2], rate=jnp.array([2.0, 0.5]), cpu_steps=3), KEY)
    assert decision.containers.tolist() == [2, 3] and decision.cpu_steps.tolist() == [3, 3]
    assert decision.illegal.tolist() == [True, False]


def test_histogram_quantiles_and_confidence_intervals():
    edges = np.geomspace(0.01, 10.0, 31)
    samples = np.random.default_rng(0).lognormal(np.log(0.3), 0.8, 200_000)
    counts = np.concatenate([[np.sum(samples < edges[0])], np.histogram(samples, edges)[0], [np.sum(samples >= edges[-1])]])
    for q in (0.5, 0.99):
        assert histogram_quantile(counts, edges, q, 60.0) == pytest.approx(np.quantile(samples, q), rel=0.05)
    assert np.isnan(histogram_quantile(np.zeros(32), edges, 0.5, 60.0))
    assert histogram_quantile(np.r_[np.zeros(31), 5.0], edges, 0.5, 60.0) == 60.0   # all at the timeout
    mean, half = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    assert confidence_interval([5.0]) == (5.0, 0.0)
