"""Kubernetes HPA and Knative KPA, driven by scripted metric series: every decision equals
the one worked out by hand from the upstream algorithm (mfg/serverless/hpa.py and kpa.py
name the source files; each test names the function it follows)."""

import jax.numpy as jnp
import numpy as np
import pytest

from mfg.serverless import HPAConfig, KPAConfig, hpa_decide, hpa_init, hpa_replicas, kpa_decide, kpa_init, kpa_scale


def ints(x):
    return np.asarray(x).tolist()


# ------------------------------------------------------------------------ HPA

def test_hpa_replicas_keeps_the_count_within_the_tolerance_and_scales_by_the_ratio_outside():
    """replica_calculator.go, GetResourceReplicas: |1 - U/T| <= 0.1 keeps the count;
    else ceil(U/T x ready).  Four functions in one call, 4 ready pods each, T = 0.8:
    U = 0.85 -> ratio 1.0625 (kept, 4); U = 0.9 -> 1.125, ceil(4.5) = 5;
    U = 0.4 -> 0.5, 2; U = 0.75 -> 0.9375 (kept, 4)."""
    config = HPAConfig()
    got = hpa_replicas(config, jnp.array([4, 4, 4, 4]), jnp.array([4, 4, 4, 4]), jnp.zeros(4),
                       jnp.array([0.85, 0.9, 0.4, 0.75]))
    assert ints(got) == [4, 5, 2, 4]


def test_hpa_counts_starting_pods_at_zero_on_a_scale_up():
    """GetResourceReplicas with unready pods (T = 0.5): 2 ready of 4, U = 0.9 -> ratio 1.8;
    the 2 starting pods put back at 0% give 1.8 x 2 / 4 = 0.9 < 1, which flips the
    direction: keep 4.  With T = 0.3, U = 1.0: ratio 3.33, rebalanced 1.667, ceil(6.67) = 7.
    Without unready pods the same 2 ready pods at ratio 1.8 ask ceil(3.6) = 4."""
    got = hpa_replicas(HPAConfig(target_utilization=0.5), jnp.array([4, 2]), jnp.array([2, 2]), jnp.array([2, 0]),
                       jnp.array([0.9, 0.9]))
    assert ints(got) == [4, 4]
    got = hpa_replicas(HPAConfig(target_utilization=0.3), jnp.array([4]), jnp.array([2]), jnp.array([2]),
                       jnp.array([1.0]))
    assert ints(got) == [7]


def test_hpa_without_metrics_keeps_the_count():
    """GetResourceReplicas: no ready pod reports (all starting) -> no recommendation."""
    assert ints(hpa_replicas(HPAConfig(), jnp.array([3]), jnp.array([0]), jnp.array([3]), jnp.array([0.0]))) == [3]


def test_hpa_scale_up_is_limited_to_max_four_pods_or_double_per_period():
    """horizontal.go, calculateScaleUpLimitWithScalingRules (v2 default behavior: Pods 4
    and Percent 100 per 15 s, select Max): from 2 pods at ratio 10 (asks 20) the limit is
    max(2 + 4, ceil(2 x 2)) = 6; 15 s later from 6 pods max(10, 12) = 12; then 24."""
    config = HPAConfig(target_utilization=0.1, max_replicas=100)
    state, current, seen = hpa_init(config, jnp.array([2])), jnp.array([2]), []
    for k in range(3):
        current, state = hpa_decide(config, state, 15.0 * k, current, current, jnp.zeros(1), jnp.array([1.0]))
        seen.append(int(current[0]))
    assert seen == [6, 12, 24]


def test_hpa_scale_down_waits_for_the_stabilization_window():
    """horizontal.go, stabilizeRecommendationWithBehaviors: scale-down keeps the highest
    recommendation of the last 300 s (strictly after now - 300).  10 pods at U = T ask 10
    at t = 0; from t = 15 U = T / 4 asks ceil(2.5) = 3, but 10 stays in the window until
    the decision at t = 300, which is the first to go down (to 3: the scale-down policy
    allows -100% per 15 s)."""
    config = HPAConfig()
    state, current = hpa_init(config, jnp.array([10])), jnp.array([10])
    seen = {}
    for k in range(22):
        utilization = 0.8 if k == 0 else 0.2
        current, state = hpa_decide(config, state, 15.0 * k, current, current, jnp.zeros(1), jnp.array([utilization]))
        seen[15 * k] = int(current[0])
    assert all(seen[t] == 10 for t in range(0, 300, 15)) and seen[300] == 3 and seen[315] == 3


def test_hpa_respects_its_bounds_and_never_scales_to_zero():
    """horizontal.go: the result is clamped to [minReplicas, maxReplicas] (min >= 1)."""
    config = HPAConfig(min_replicas=2, max_replicas=5, downscale_stabilization=0.0)
    state = hpa_init(config, jnp.array([4, 4]))
    got, _ = hpa_decide(config, state, 0.0, jnp.array([4, 4]), jnp.array([4, 4]), jnp.zeros(2), jnp.array([0.01, 5.0]))
    assert ints(got) == [2, 5]
    with pytest.raises(ValueError, match="min_replicas"):
        HPAConfig(min_replicas=0)


# ------------------------------------------------------------------------ KPA

def test_kpa_stable_mode_sizes_for_the_stable_concurrency():
    """scaling/autoscaler.go, Scale: target value 100 x 0.7 = 70 in flight per pod.
    3 ready pods: stable 200 -> ceil(2.86) = 3; stable 300 -> ceil(4.29) = 5; panic at the
    same values stays under 200% of the ready pods (3/3, 5/3)."""
    config = KPAConfig()
    got, excess, state = kpa_scale(config, kpa_init(2), 0.0, jnp.array([3, 3]), jnp.array([200.0, 300.0]),
                                   jnp.array([200.0, 300.0]))
    assert ints(got) == [3, 5] and not np.isfinite(np.asarray(state.panic_time)).any()
    # excess burst capacity: floor(3 x 100 - 211 - panic)
    assert ints(excess) == [np.floor(300 - 211 - 200), np.floor(300 - 211 - 300)]


def test_kpa_scale_down_is_at_most_halving_per_tick():
    """Scale: the desired count is clamped below by floor(ready / max_scale_down_rate):
    10 ready pods at stable concurrency 10 (asks 1) go to 5, then floor(5 / 2) = 2, then 1."""
    config = KPAConfig()
    state, ready, seen = kpa_init(1), jnp.array([10]), []
    for k in range(3):
        ready, state = kpa_decide(config, state, 2.0 * k, ready, jnp.array([10.0]), jnp.array([10.0]))
        seen.append(int(ready[0]))
    assert seen == [5, 2, 1]


def test_kpa_panics_never_scales_down_in_panic_and_leaves_it_a_stable_window_after():
    """Scale: 2 ready pods, panic concurrency 400 -> dppc = ceil(5.71) = 6, 6 / 2 >= 200%:
    panic starts at t = 0 with 6 pods.  While panicking the count never falls below 6,
    though the stable window asks 3 (ceil(150 / 70)) and the panic window 2.  The tick at
    t = 60 is still in panic (0 + 60 is not before 60); at t = 62 panic ends and the
    count follows the stable window: 3 (not below floor(6 / 2) = 3)."""
    config = KPAConfig()
    state = kpa_init(1)
    pods, state = kpa_decide(config, state, 0.0, jnp.array([2]), jnp.array([100.0]), jnp.array([400.0]))
    assert int(pods[0]) == 6 and float(state.panic_time[0]) == 0.0
    for t in np.arange(2.0, 61.0, 2.0):
        pods, state = kpa_decide(config, state, t, jnp.array([6]), jnp.array([150.0]), jnp.array([140.0]))
        assert int(pods[0]) == 6, t
    pods, state = kpa_decide(config, state, 62.0, jnp.array([6]), jnp.array([150.0]), jnp.array([140.0]))
    assert int(pods[0]) == 3 and not np.isfinite(float(state.panic_time[0]))


def test_kpa_panic_is_extended_by_every_tick_over_the_threshold():
    """Scale: each tick over the threshold moves panicTime to now, so panic lasts one
    stable window after the *last* such tick (here t = 30: still panicking at t = 90)."""
    config = KPAConfig()
    state = kpa_init(1)
    _, state = kpa_decide(config, state, 0.0, jnp.array([2]), jnp.array([100.0]), jnp.array([400.0]))
    _, state = kpa_decide(config, state, 30.0, jnp.array([6]), jnp.array([100.0]), jnp.array([1000.0]))
    assert float(state.panic_time[0]) == 30.0
    pods, state = kpa_decide(config, state, 90.0, jnp.array([15]), jnp.array([70.0]), jnp.array([70.0]))
    assert int(pods[0]) == 15 and np.isfinite(float(state.panic_time[0]))


def test_kpa_scales_to_zero_after_a_stable_window_and_the_grace_period_and_back_from_zero():
    """kpa/scaler.go, handleScaleToZero, with container concurrency 1 (target value 0.7).
    Active since t = 0; traffic stops: the decider asks 0 (floor(1 / 2) = 0 allows it).
    t = 10: active for 10 s < 60 s, one pod stays.  t = 60: active for a stable window ->
    marked inactive, one pod stays.  t = 88: inactive 28 s < 30 s grace, one pod.  t = 90:
    0 pods.  t = 92: a request waits at the activator (stable 0.05, panic 0.5): the
    decider asks ceil(0.05 / 0.7) = 1, the revision is active again."""
    config = KPAConfig(container_concurrency=1)
    assert config.target_value == pytest.approx(0.7)
    state, seen = kpa_init(1), {}
    for t in (10.0, 60.0, 88.0, 90.0):
        pods, state = kpa_decide(config, state, t, jnp.array([1 if t < 90 else 0]), jnp.zeros(1), jnp.zeros(1))
        seen[t] = int(pods[0])
    assert seen == {10.0: 1, 60.0: 1, 88.0: 1, 90.0: 0}
    pods, state = kpa_decide(config, state, 92.0, jnp.array([0]), jnp.array([0.05]), jnp.array([0.5]))
    assert int(pods[0]) == 1 and not np.isfinite(float(state.inactive_since[0]))
    assert float(state.active_since[0]) == 92.0


def test_kpa_without_scale_to_zero_and_with_bounds_keeps_between_them():
    """handleScaleToZero with enable-scale-to-zero false keeps one pod; min-scale and
    max-scale bound the result."""
    pods, _ = kpa_decide(KPAConfig(scale_to_zero=False), kpa_init(1, now=-1000.0), 0.0, jnp.array([1]),
                         jnp.zeros(1), jnp.zeros(1))
    assert int(pods[0]) == 1
    pods, _ = kpa_decide(KPAConfig(min_scale=2, max_scale=4), kpa_init(2), 0.0, jnp.array([3, 3]),
                         jnp.array([0.0, 700.0]), jnp.array([0.0, 700.0]))
    assert ints(pods) == [2, 4]
    with pytest.raises(ValueError, match="target_utilization"):
        KPAConfig(target_utilization=1.5)
