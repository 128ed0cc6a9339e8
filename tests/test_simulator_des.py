"""The tick simulator (mfg/serverless/simulator.py) against the request-level reference
(tests/serverless_des.py) on six scripted scenarios (issue 15, acceptance 1).

Both simulators get the same scenario: Poisson arrivals with a piecewise-constant rate,
exponential service, FIFO over concurrency-1 containers, a 1 s cold start, cpu.shares
contention and a scripted size schedule.  They share no code and no random numbers.  Each
scenario repeats a pattern for long enough that sampling noise is under the tolerances:
SLO violation rate and p99 within 10% relative (or 1e-3 absolute where the rate is tiny)
and mean latency within 5% (the least margin: "contention at capacity", whose reference
mean itself varies by about 3% between seeds; docs/serverless.md).  Steady load is also checked against Erlang C.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from mfg.serverless.evaluation import histogram_quantile
from mfg.serverless.platform import Platform
from mfg.serverless.policies import Scripted
from mfg.serverless.simulator import Functions, TickCounts, latency_edges, simulate
from serverless_des import simulate as des_simulate

DT = 2.0
COLD_START = 1.0


@dataclasses.dataclass
class Scenario:
    """rates[i][p]: requests/s of function i over piece p of ``piece`` seconds (the pattern
    repeats ``repeats`` times); schedule: (time, function, containers) within a pattern."""

    rates: list
    piece: float
    service_mean: list
    slo: list
    schedule: list
    initial: list
    repeats: int
    cpu: list | None = None
    capacity: float = math.inf

    @property
    def pattern(self) -> float:
        return self.piece * len(self.rates[0])

    @property
    def horizon(self) -> float:
        return self.pattern * self.repeats

    def full_rates(self):
        return [list(r) * self.repeats for r in self.rates]

    def full_schedule(self):
        return sorted([(t + k * self.pattern, i, n) for k in range(self.repeats) for t, i, n in self.schedule])


def run_des(s: Scenario, seed=0):
    cpu = s.cpu or [1.0] * len(s.rates)
    out = des_simulate(s.full_rates(), s.piece, s.service_mean, cpu, s.capacity, s.full_schedule(), s.horizon,
                       cold_start=COLD_START, initial=s.initial, seed=seed)
    latency, function = np.array(out.latency), np.array(out.function)
    done = np.isfinite(latency)
    latency, function = latency[done], function[done]
    slo = np.array(s.slo)[function]
    return {"violations": float(np.mean(latency > slo)), "p99": float(np.quantile(latency, 0.99)),
            "mean": float(latency.mean()), "requests": latency.size}


def run_ticks(s: Scenario, seed=0, samples=16):
    n = len(s.rates)
    ticks = int(round(s.horizon / DT))
    per_piece = int(round(s.piece / DT))
    rates = np.repeat(np.array(s.full_rates(), np.float64), per_piece, axis=1)[:, :ticks]
    counts = (rates * DT).astype(np.float32)          # the Poisson process's rate, per tick
    # the script: the size of every function from each event time on
    times = sorted({0.0} | {t for t, _, _ in s.full_schedule()})
    sizes = np.zeros((len(times), n), np.float32)
    current = np.array(s.initial, np.float32)
    events = s.full_schedule()
    for e, t in enumerate(times):
        for t_event, i, size in events:
            if t_event == t:
                current[i] = size
        sizes[e] = current
    cpu = np.array(s.cpu or [1.0] * n, np.float32)
    policy = Scripted(np.array(times, np.float32), sizes, cpu, period=DT)
    platform = Platform(dt=DT, cold_start=COLD_START, capacity=s.capacity, latency_samples=samples, max_containers=64)
    functions = Functions(np.array(s.service_mean, np.float32), np.array(s.slo, np.float32))
    edges = latency_edges(240, 1e-3, 600.0)
    result = simulate(platform, functions, TickCounts(counts), policy, jax.random.key(seed),
                      initial_containers=np.array(s.initial, np.float32), initial_cpu=cpu, edges=edges)
    sums = {k: float(np.sum(v)) for k, v in result.per_function.items()}
    histogram = np.asarray(result.histogram, np.float64).sum(0)
    return {"violations": sums["violations"] / sums["requests"],
            "p99": float(histogram_quantile(histogram, edges, 0.99, 600.0)),
            "mean": sums["latency_sum"] / sums["requests"], "requests": sums["requests"]}


def erlang_c(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


SCENARIOS = {
    # one function, 2 containers, rho = 0.75
    "steady load": Scenario([[6.0]], 60.0, [0.25], [1.0], [], [2], repeats=1000),
    # the load triples; a third container is ordered 10 s later (cold start 1 s)
    "step in load": Scenario([[3.0] * 5 + [9.0] * 5], 60.0, [0.25], [1.0], [(310.0, 0, 3), (600.0 - DT, 0, 2)],
                             [2], repeats=100),
    # 10 s at 8x the load on a fixed size: a backlog builds and drains
    "burst": Scenario([[25.0] + [3.0] * 11], 10.0, [0.25], [1.25], [], [3], repeats=500),
    # no container for 20 s of every minute: requests wait behind the activator
    "scale from zero": Scenario([[0.5]], 60.0, [0.2], [1.0], [(0.0, 0, 0), (20.0, 0, 1)], [0], repeats=1000),
    # the load ramps up and down; each step's containers are ordered at its start
    "cold starts during a ramp": Scenario(
        [[1.0 + 2.0 * p for p in range(10)] + [19.0 - 2.0 * p for p in range(10)]], 10.0, [0.5], [2.5],
        [(10.0 * p, 0, math.ceil((1.0 + 2.0 * p) * 0.5 / 0.7)) for p in range(10)]
        + [(100.0 + 10.0 * p, 0, math.ceil((19.0 - 2.0 * p) * 0.5 / 0.7)) for p in range(10)], [1], repeats=200),
    # 8 functions at 1.25x the cluster's cores for 20 s of every minute; half request 0.5 core
    "contention at capacity": Scenario([[2.5, 1.0, 1.0]] * 8, 20.0, [0.5] * 8, [2.5] * 8, [], [3] * 8,
                                       repeats=300, cpu=[1.0] * 4 + [0.5] * 4, capacity=8.0),
}


def close(tick, des, relative, absolute=0.0):
    return abs(tick - des) <= max(relative * abs(des), absolute)


# Measured (2026-12-04, latency_samples 16, the DES seed 0): tick / DES - 1 for violations, p99, mean
#   steady load +1.2%, +3.9%, +0.9%;  step in load +1.5%, -2.2%, -0.4%;  burst +1.2%, +4.8%, +2.4%;
#   scale from zero -1.3%, +2.9%, -0.7%;  cold starts during a ramp +2.8%, +1.7%, +0.4%;
#   contention at capacity -5.1%, +1.8%, -4.4% (the default contention_passes 4; with the
#   one-shot estimate, contention_passes 0, +38%, +44%, +55%).  docs/serverless.md has how
#   the contention and the backlog's spread came to agree.
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_tick_simulator_agrees_with_the_request_level_reference(name):
    scenario = SCENARIOS[name]
    des = run_des(scenario)
    tick = run_ticks(scenario)
    report = f"{name}: tick {tick} des {des}"
    assert close(tick["violations"], des["violations"], 0.10, 1e-3), report
    assert close(tick["p99"], des["p99"], 0.10), report
    assert close(tick["mean"], des["mean"], 0.05), report


def test_steady_load_is_erlang_c():
    scenario = SCENARIOS["steady load"]
    tick = run_ticks(scenario)
    lam, mu, c = 6.0, 4.0, 2
    expected = erlang_c(c, lam / mu) / (c * mu - lam) + 1 / mu
    assert abs(tick["mean"] / expected - 1) < 0.02, (tick["mean"], expected)
