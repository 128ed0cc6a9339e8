"""The tick simulator's parts (mfg/serverless/simulator.py, platform.py, policies.py,
settings.py): each rule against a closed form or a brute-force check, the information
each policy decides from, conservation of requests, and clear errors on bad input.
The agreement with the request-level reference is tests/test_simulator_des.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg.serverless.hpa import HPAConfig
from mfg.serverless.kpa import KPAConfig
from mfg.serverless.platform import ErlangTable, Platform, cpu_shares
from mfg.serverless.policies import HPA, KPA, Scripted, Static
from mfg.serverless.settings import SETTINGS, Workload, capacity_of
from mfg.serverless.simulator import (Functions, TickCounts, _actuate, hash_uniforms, initial_state, serve_tick,
                                      simulate)
from mfg.serverless.workloads import generate_functions


def erlang_c(c, a):
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_the_erlang_table_matches_the_closed_form_and_inverts_the_occupancy():
    table = ErlangTable.build(16)
    for n, rho in [(1, 0.5), (2, 0.75), (5, 0.9), (16, 0.6)]:
        assert abs(float(table(jnp.float32(n), jnp.float32(rho))) - erlang_c(n, n * rho)) < 2e-3
        occupancy = n * rho + erlang_c(n, n * rho) * rho / (1 - rho)
        assert abs(float(table.occupancy(jnp.float32(n), jnp.float32(rho))) / occupancy - 1) < 5e-3
        back, _ = table.utilization_of(jnp.float32(n), jnp.float32(occupancy))
        assert abs(float(back) - rho) < 2e-3


def test_cpu_shares_is_the_water_filling_of_busy_containers():
    """Brute force: each function's cores min(slots v, max(busy v, work)) with v = min(1,
    theta c), summed over functions, equals the capacity at the returned theta."""
    rng = np.random.default_rng(0)
    busy, work, slots = rng.uniform(0, 4, 50), rng.uniform(0, 3, 50), np.full(50, 4.0)
    cpu = rng.choice([0.25, 0.5, 1.0], 50)
    capacity = 40.0
    theta = float(cpu_shares(jnp.asarray(busy), jnp.asarray(work), jnp.asarray(slots), jnp.asarray(cpu), capacity))
    v = np.minimum(1.0, theta * cpu)
    assert abs(np.minimum(slots * v, np.maximum(busy * v, work)).sum() / capacity - 1) < 1e-4
    # room for everyone: no contention
    assert math.isinf(float(cpu_shares(jnp.asarray(busy), jnp.asarray(work), jnp.asarray(slots), jnp.asarray(cpu),
                                       1e4)))


def test_hash_uniforms_are_uniform_and_differ_by_counter():
    u = np.asarray(hash_uniforms(jnp.uint32(5), 3, (20000, 4)))
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.02
    other = np.asarray(hash_uniforms(jnp.uint32(5), 4, (20000, 4)))
    assert np.mean(other == u) < 1e-3
    np.testing.assert_array_equal(u, np.asarray(hash_uniforms(jnp.uint32(5), 3, (20000, 4))))


def test_scaling_orders_containers_and_removes_starting_ones_first():
    platform = Platform(dt=2.0, cold_start=3.0)                # ready 1 tick later, 1 s into it
    state = initial_state(platform, 3, containers=2.0)
    state, ordered = _actuate(platform, state, jnp.array([5.0, 2.0, 1.0]), jnp.ones(3))
    np.testing.assert_allclose(np.asarray(ordered), [3, 0, 0])
    np.testing.assert_allclose(np.asarray(state.starting[:, 1]), [3, 0, 0])
    np.testing.assert_allclose(np.asarray(state.ready), [2, 2, 1])
    state, ordered = _actuate(platform, state, jnp.array([3.0, 2.0, 0.0]), jnp.ones(3))
    np.testing.assert_allclose(np.asarray(state.starting.sum(1)), [1, 0, 0])   # two orders cancelled
    np.testing.assert_allclose(np.asarray(state.ready), [2, 2, 0])


def run(platform, policy, rates, service=0.25, slo=1.0, containers=1.0, seed=0):
    n = rates.shape[0]
    functions = Functions(jnp.full(n, service, jnp.float32), jnp.full(n, slo, jnp.float32))
    return simulate(platform, functions, TickCounts(jnp.asarray(rates * platform.dt, jnp.float32)), policy,
                    jax.random.key(seed), initial_containers=containers)


def test_a_steady_tick_keeps_the_stationary_occupancy_and_erlang_c_latency():
    platform = Platform(max_containers=8)
    table = ErlangTable.build(platform.max_slots)
    functions = Functions(jnp.array([0.25]), jnp.array([1.0]))
    lam, n = 6.0, 2
    x = float(table.occupancy(jnp.float32(n), jnp.float32(lam * 0.25 / n)))
    state = initial_state(platform, 1, n)._replace(occupancy=jnp.array([x], jnp.float32))
    state, sums, measurement, _, _ = serve_tick(platform, table, functions, state, jnp.array([lam * 2.0]),
                                                jnp.float32(0), jnp.full((1, 5), 0.5))
    assert abs(float(state.occupancy[0]) / x - 1) < 1e-3
    expected = erlang_c(2, 1.5) / (8 - 6) + 0.25
    assert abs(float(sums["latency_sum"][0] / sums["requests"][0]) / expected - 1) < 3e-3
    assert abs(float(measurement.concurrency[0]) / (lam * expected) - 1) < 1e-2      # Little's law


def test_every_arrival_is_counted_once_started_or_still_waiting():
    rates = np.concatenate([np.full((2, 150), 3.0), np.full((2, 30), 30.0), np.zeros((2, 120))], axis=1)
    result = run(Platform(), Static(2.0, 1.0), rates)
    arrived = rates.sum() * 2.0
    counted = float(np.sum(result.per_function["requests"]) + np.sum(result.per_function["backlog"]))
    assert abs(counted / arrived - 1) < 1e-4


def test_a_policy_decides_before_the_arrivals_it_serves():
    """Two loads that differ only in their last tick give the same decisions: the last
    decision is made before that tick is served, and there is none after it."""
    rates = np.full((3, 60), 4.0)
    changed = rates.copy()
    changed[:, -1] = 400.0
    policy = KPA(KPAConfig(target=1.0))
    first, second = run(Platform(), policy, rates), run(Platform(), policy, changed)
    np.testing.assert_array_equal(np.asarray(first.per_function["cold_starts"]),
                                  np.asarray(second.per_function["cold_starts"]))
    np.testing.assert_array_equal(np.asarray(first.state.ready), np.asarray(second.state.ready))
    assert np.sum(second.per_function["violations"]) > np.sum(first.per_function["violations"])


def test_kpa_follows_the_load_and_scales_to_zero_after_its_grace():
    """10 req/s of 0.25 s keeps 2.5 containers busy, and the in-flight count the KPA reads
    includes the waiting ones: L(4) = 3.0 and L(5) = 2.6 requests, so at target 1 (70%)
    ceil(L / 0.7) asks 5 at 4 containers and 4 at 5; it settles on one of the two.  Then no
    load: after the stable window (60 s) and the grace (30 s) it goes to zero."""
    rates = np.concatenate([np.full((1, 90), 10.0), np.zeros((1, 90))], axis=1)
    loaded = run(Platform(), KPA(KPAConfig(target=1.0)), rates[:, :90])
    assert float(loaded.state.ready[0]) in (4.0, 5.0)
    idle = run(Platform(), KPA(KPAConfig(target=1.0)), rates)
    assert float(idle.state.ready[0] + idle.state.starting.sum()) == 0.0
    no_zero = run(Platform(), KPA(KPAConfig(target=1.0, scale_to_zero=False)), rates)
    assert float(no_zero.state.ready[0]) == 1.0


def test_hpa_sees_usage_above_its_request_and_respects_the_scale_up_limit():
    """A 0.25-core request running single-threaded requests at one core reports 400%
    utilization (cpu.shares is not a limit), so the HPA wants more pods at once; each sync
    (every 15 s: t = 0, 16, 30, 46 at a 2 s tick) grows by at most max(+4, +100%)."""
    rates = np.full((1, 30), 32.0)                            # 8 cores of work
    policy = HPA(HPAConfig(max_replicas=200), cpu=0.25)
    result = run(Platform(), policy, rates, containers=1.0)
    hpa_state = result.policy_state[0]
    made = np.asarray(hpa_state.times) > -np.inf
    sizes = np.asarray(hpa_state.replicas)[0][made]
    assert sizes[0] == 1 and sizes[-1] > 5
    for before, after in zip(sizes[:-1], sizes[1:]):
        assert after <= max(before + 4, 2 * before), sizes


def test_scripted_sizes_change_on_time():
    policy = Scripted(np.array([0.0, 20.0], np.float32), np.array([[1.0], [3.0]], np.float32), 1.0, period=2.0)
    result = run(Platform(), policy, np.full((1, 30), 1.0))
    assert float(result.state.ready[0]) == 3.0
    assert float(np.sum(result.per_function["cold_starts"])) == 2.0


def test_contention_slows_everyone_when_the_work_exceeds_the_cores():
    rates = np.full((8, 60), 6.0)                 # 8 x 1.5 cores of work
    roomy = run(Platform(capacity=100.0), Static(4.0, 1.0), rates)
    tight = run(Platform(capacity=8.0), Static(4.0, 1.0), rates)
    assert float(np.max(roomy.series["pressure"])) < 1 < float(np.min(tight.series["pressure"][1:]))
    mean = lambda r: float(np.sum(r.per_function["latency_sum"]) / np.sum(r.per_function["requests"]))
    assert mean(tight) > 2 * mean(roomy)
    used = float(np.sum(tight.per_function["used"])) / (60 * 2.0)
    assert used <= 8.0 * 1.001


def test_a_per_function_cpu_request_is_a_priority_only_under_contention():
    """The KPA with one request per function (the two-class baseline of docs/serverless.md,
    change 14): identical functions at 1 and 0.5 core per container.  With idle cores the
    request only sets what is paid (the same latency, twice the cores for the same
    containers); when the work exceeds the cores, cpu.shares gives the 1-core containers
    twice the weight, so the 1-core functions wait less."""
    rates = np.full((8, 90), 6.0)                 # 8 x 1.5 cores of work
    cpu = np.array([1.0] * 4 + [0.5] * 4, np.float32)
    policy = KPA(KPAConfig(target=1.0), cpu=cpu)
    mean = lambda r, part: float(np.sum(r.per_function["latency_sum"][part])
                                 / np.sum(r.per_function["requests"][part]))
    roomy = run(Platform(capacity=100.0), policy, rates)
    tight = run(Platform(capacity=8.0), policy, rates)
    assert mean(roomy, slice(0, 4)) == pytest.approx(mean(roomy, slice(4, 8)), rel=0.1)
    allocated = np.asarray(roomy.per_function["allocated"])
    assert allocated[:4].sum() == pytest.approx(2 * allocated[4:].sum(), rel=0.1)
    assert mean(tight, slice(0, 4)) < 0.8 * mean(tight, slice(4, 8))


def test_the_cluster_settings_bind_as_their_names_say():
    workload = Workload.from_trace(generate_functions(300, seed=1), max_containers=100)
    shares = {setting: workload.contended_share(capacity_of(setting, workload)) for setting in SETTINGS}
    assert shares["roomy"] == 0.0
    assert 0.0 < shares["tight"] < 0.2
    assert shares["congested"] > 0.5
    peak_busy = workload.counts.max(1) / 60 * workload.service_mean
    assert peak_busy.max() <= 0.7 * 100 + 1e-6


@pytest.mark.parametrize("make, message", [
    (lambda: Platform(dt=7.0), "does not divide a minute"),
    (lambda: Platform(concurrency=0), "Platform.concurrency"),
    (lambda: Platform(price=-1.0), "Platform.price"),
    (lambda: Platform(capacity=0.0), "Platform.capacity"),
    (lambda: Platform(contention_passes=-1), "Platform.contention_passes = -1 is not allowed; it must be an int >= 0"),
    (lambda: capacity_of("cramped", Workload(np.ones((1, 2)), np.ones(1), np.ones(1))), "allowed: roomy, tight"),
    (lambda: run(Platform(capacity=0.5), Static(1.0, 1.0), np.ones((1, 30))), "below one container"),
    (lambda: simulate(Platform(), Functions(jnp.ones(2), jnp.ones(2)), TickCounts(jnp.ones((3, 30))),
                      Static(), jax.random.key(0)), "arrivals are for 3 functions"),
    (lambda: simulate(Platform(), Functions(jnp.ones(1), jnp.ones(1)), TickCounts(jnp.ones((1, 30))),
                      Static(), jax.random.key(0), minutes=2), "minutes must lie in 1..1"),
])
def test_bad_input_is_refused_with_what_is_allowed(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("price, preferred", [(0.0, 0), (100.0, 1)])
def test_q_learning_picks_the_kpa_target_its_reward_prefers(price, preferred):
    """A steady 10 req/s: target 0.3 keeps ~12 containers and no violations, target 2.0
    about 3 containers and many; free CPU makes the small target best, dear CPU the big."""
    from mfg.serverless.policies import QLearningKPA
    rates = np.full((4, 30 * 20), 10.0)
    policy = QLearningKPA.untrained(4, edges=np.array([0.0]), targets=(0.3, 2.0), exploration=0.3,
                                    learning_rate=0.2, price=price)
    result = run(Platform(), policy, rates, containers=4.0)
    q = np.asarray(result.policy_state[0])
    assert (np.argmax(q[:, 1], axis=1) == preferred).all(), q[:, 1]
    greedy = policy.frozen(result.policy_state[0])
    assert greedy.exploration == 0 and greedy.learning_rate == 0
    replay = run(Platform(), greedy, rates[:, :60], containers=4.0)
    np.testing.assert_array_equal(np.asarray(replay.policy_state[0]), q)      # frozen: nothing learned


def test_a_long_stochastic_queue_waits_about_its_length_over_the_service_rate():
    """x = 5,000 requests in the stochastic part on 2 slots: the stationary shape's wait is
    about (x - n) / (n mu), not the infinity a table's rho = 1 would give."""
    platform = Platform(max_containers=8)
    table = ErlangTable.build(platform.max_slots)
    functions = Functions(jnp.array([0.5], jnp.float32), jnp.array([1.0], jnp.float32))
    state = initial_state(platform, 1, 2)._replace(occupancy=jnp.array([5000.0], jnp.float32))
    _, sums, _, _, _ = serve_tick(platform, table, functions, state, jnp.array([2.0]), jnp.float32(0),
                                  jnp.full((1, 5), 0.5))
    mean = float(sums["latency_sum"][0] / sums["requests"][0])
    assert abs(mean / (5000 / 4.0) - 1) < 0.05, mean


def test_a_backlog_spreads_as_a_random_walk_and_its_waits_keep_their_mean():
    """A backlog of 20 on one 1 s slot, 3 req/s arriving: over a 2 s tick its count's
    variance grows by (lam + r) dt = (3 + 1) 2 = 8 (Poisson arrivals and departures);
    once the backlog clears it has none.  The sampled waits spread around the fluid
    model's, with the same mean (the latency sums do not depend on the draws)."""
    platform = Platform(max_containers=8, latency_samples=4000)
    table = ErlangTable.build(platform.max_slots)
    functions = Functions(jnp.array([1.0], jnp.float32), jnp.array([5.0], jnp.float32))
    queue = jnp.zeros((1, platform.backlog_ticks), jnp.float32).at[0, -1].set(20.0)
    state = initial_state(platform, 1, 1)._replace(queue=queue, queued_at=jnp.full_like(queue, -10.0))
    uniforms = hash_uniforms(jnp.uint32(7), 0, (1, 5 * platform.latency_samples))
    grown, sums, _, samples, weights = serve_tick(platform, table, functions, state, jnp.array([6.0], jnp.float32),
                                                  jnp.float32(0.0), uniforms)
    assert abs(float(grown.spread[0]) - 8.0) < 1e-4
    fluid = np.asarray(samples[0, platform.latency_samples:])
    mean = float(sums["latency_sum"][0] / sums["requests"][0])
    assert abs(fluid.mean() / mean - 1) < 0.03 and fluid.std() > 0.05 * mean, (fluid.mean(), mean, fluid.std())
    cleared, _, _, _, _ = serve_tick(platform, table, functions, grown._replace(ready=jnp.array([20.0], jnp.float32)),
                                     jnp.array([0.0], jnp.float32), jnp.float32(2.0), uniforms)
    assert float(cleared.queue.sum()) == 0.0 and float(cleared.spread[0]) == 0.0


def _contended_ticks(passes: int):
    """Per tick of the DES contention scenario (8 functions of 3 containers, half
    requesting 1 core and half 0.5, 2.5 req/s of 0.5 s requests each for 20 s of every
    minute, 1 req/s the rest, against 8 cores), from the 11th repetition of its minute on:
    [ticks, 8] cores used and the core-seconds the departures took, s (a + L - L') per
    function (L the requests in the system, backlog and stochastic part)."""
    platform = Platform(capacity=8.0, max_containers=64, contention_passes=passes)
    table = ErlangTable.build(platform.max_slots)
    functions = Functions(jnp.full(8, 0.5, jnp.float32), jnp.full(8, 2.5, jnp.float32))
    state = initial_state(platform, 8, 3.0, jnp.array([1.0] * 4 + [0.5] * 4, jnp.float32))
    minute = np.array([2.5 * 2.0] * 10 + [1.0 * 2.0] * 20, np.float32)
    step = jax.jit(lambda state, a, now: serve_tick(platform, table, functions, state, a, now,
                                                    jnp.full((8, 5), 0.5, jnp.float32)))
    usage, work = [], []
    for tick in range(12 * 30):
        before = np.asarray(state.occupancy) + np.asarray(state.queue).sum(1)
        state, _, measurement, _, _ = step(state, jnp.full(8, minute[tick % 30]), jnp.float32(2.0 * tick))
        after = np.asarray(state.occupancy) + np.asarray(state.queue).sum(1)
        usage.append(np.asarray(measurement.usage))
        work.append(0.5 * (minute[tick % 30] + before - after) / 2.0)
    return np.array(usage[10 * 30:]), np.array(work[10 * 30:])


def test_the_default_contention_keeps_every_core_busy_while_requests_wait():
    """A queue waits in every function requesting 0.5 core and the busy containers want
    2.7x the cores: all 8 are in use in the overload's 4th to 10th ticks (the
    request-level reference uses 7.9-8.0 here)."""
    usage, _ = _contended_ticks(Platform.contention_passes)
    overload = usage.sum(1).reshape(-1, 30)[:, 3:10]
    assert overload.min() > 0.995 * 8.0, overload.min()


@pytest.mark.parametrize("passes", [0, Platform.contention_passes])
def test_the_cores_a_function_uses_are_the_work_its_departures_took(passes):
    """Exponential service: a request departing took s core-seconds, whatever its speed.
    Every tick, for every function, the cores it was measured to use are the work of the
    requests that left its system (departures from the stochastic part, and backlog
    requests starting service), contended or not, with either contention rule."""
    usage, work = _contended_ticks(passes)
    np.testing.assert_allclose(usage, work, atol=2e-3 * 8.0)


def test_contention_passes_leave_an_uncontended_tick_alone():
    """With cores to spare (a finite capacity that does not bind, so the water-filling
    runs) every busy slot runs at one core, whatever the passes."""
    platform = Platform(max_containers=64, capacity=40.0)
    table = ErlangTable.build(platform.max_slots)
    functions = Functions(jnp.full(3, 0.5, jnp.float32), jnp.full(3, 2.5, jnp.float32))
    state = initial_state(platform, 3, 3.0)
    a = jnp.array([2.0, 5.0, 9.0], jnp.float32)
    u = jnp.full((3, 5), 0.5, jnp.float32)
    plain = serve_tick(platform, table, functions, state, a, jnp.float32(0.0), u)[1]
    passes = serve_tick(Platform(max_containers=64, capacity=40.0, contention_passes=4), table, functions, state, a,
                        jnp.float32(0.0), u)[1]
    for name in plain:
        np.testing.assert_allclose(np.asarray(passes[name]), np.asarray(plain[name]), rtol=1e-6)


def test_one_compilation_serves_every_cluster_capacity():
    """The settings size a capacity per population and day; it is an argument of the
    jitted episode, not part of its static configuration."""
    from mfg.serverless import simulator

    workload = Workload.from_trace(generate_functions(40, seed=0), max_containers=20)
    functions, arrivals = workload.inputs(workload.sample(10, 0), start=600)
    policy = KPA(KPAConfig(target=0.7))
    results = []
    for capacity in (3.0, 5.0, 40.0):
        before = simulator._simulate._cache_size()
        results.append(simulate(Platform(max_containers=20, capacity=capacity), functions, arrivals, policy,
                                jax.random.key(0), minutes=3))
        compiled = simulator._simulate._cache_size() - before
        assert compiled <= (1 if capacity == 3.0 else 0)
    # and the capacity still acts: the tightest cluster serves with the most contention
    pressures = [float(np.max(r.series["pressure"])) for r in results]
    assert pressures[0] > pressures[1] > pressures[2]
