"""Training the online NAC policy and comparing autoscalers on the tick simulator.

The protocol (docs/serverless.md, "The learned policy"):

* **Days apart.**  The policy trains on a training day, a synthetic Azure-like day of
  another population (``generate_functions(pool, seed=train_seed)``, by default seed 1),
  for ``episodes`` passes over the whole day in the cluster setting at hand (sized from
  that population's own work, ``mfg.serverless.settings.capacity_of``); it is then
  evaluated, frozen, on the evaluation day (seed 0, the baselines' day of
  ``benchmarks/serverless_ticks.py``) that it has never seen, with other functions.
* **Independent RL** is the same learner trained on the same day in a cluster without
  contention (infinite capacity: every function learns as if alone), then deployed with
  everyone else in the contended cluster.
* **Baselines** run on the evaluation day at each of their knobs.
* **Q-learning** (``QLearningKPA``: one table per function, after Schuler et al.) trains
  on *another day of the same functions* (``train_q_learning``), since its table cannot
  be carried to other functions, and is evaluated frozen on the evaluation day.

``summarize`` gives one run's metrics: SLO violations per request, mean and p99 latency,
allocated and used cores per function, cold starts per function-hour, the backlog left,
the violations floor (exp(-slo / s), request-weighted: what no policy avoids with the
model's exponential service times), the mean pressure, and the population objective
per request, (violations + price x allocated core-seconds) / requests.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np

from mfg.serverless.evaluation import histogram_quantile
from mfg.serverless.learned import OnlineNAC
from mfg.serverless.platform import Platform
from mfg.serverless.policies import QLearningKPA
from mfg.serverless.settings import Workload, capacity_of
from mfg.serverless.simulator import latency_edges, simulate

__all__ = ["Population", "population", "warm_start", "summarize", "train_online", "TrainingRun", "deploy",
           "run_policy", "mean_rows", "frontier_at", "verdicts", "MEAN_METRICS", "train_q_learning",
           "untrained_q_learning", "q_learning_sweep", "Q_LEARNING_EDGES", "Q_LEARNING_TARGETS"]

MEAN_METRICS = ("slo_violations", "p99_latency", "mean_latency", "allocated_cores", "cold_starts_per_hour",
                "violations_floor", "mean_pressure", "objective")


@dataclasses.dataclass(frozen=True)
class Population:
    """N functions of a workload's pool, and the minutes simulated.

    Attributes:
      workload: the pool (``Workload``).
      assignment: [N] pool rows simulated.
      start: first minute of the day simulated; minutes: how many.
    """

    workload: Workload
    assignment: np.ndarray
    start: int
    minutes: int

    @property
    def num_functions(self) -> int:
        return int(self.assignment.shape[0])

    def inputs(self, dispersion: float | None = None):
        return self.workload.inputs(self.assignment, start=self.start, dispersion=dispersion)

    def capacity(self, setting: str) -> float:
        return capacity_of(setting, self.workload, self.assignment)

    @property
    def service_mean(self) -> np.ndarray:
        return self.workload.service_mean[self.assignment]

    @property
    def slo(self) -> np.ndarray:
        return self.workload.slo[self.assignment]


def population(workload: Workload, num_functions: int, seed: int = 0, start: int = 0,
               minutes: int | None = None) -> Population:
    """``num_functions`` functions of ``workload`` (sample ``seed``) from minute ``start``."""
    minutes = workload.num_minutes - start if minutes is None else int(minutes)
    if not (0 <= start and 1 <= minutes and start + minutes <= workload.num_minutes):
        raise ValueError(f"minutes {start}..{start + minutes} lie outside the day's {workload.num_minutes} minutes")
    return Population(workload, workload.sample(num_functions, seed), int(start), minutes)


def warm_start(pop: Population, max_containers: int, utilization: float = 0.7) -> np.ndarray:
    """[N] containers that keep each function's first minute ``utilization`` busy (no policy
    pays for a cold cluster at the start)."""
    w = pop.workload
    busy = w.counts[pop.assignment, pop.start] / 60.0 * w.service_mean[pop.assignment]
    return np.clip(np.ceil(busy / utilization), 1, max_containers).astype(np.float32)


def summarize(result, pop: Population, price: float = 0.0, edges: np.ndarray | None = None) -> dict[str, float]:
    """One run's metrics (module docstring)."""
    edges = latency_edges() if edges is None else edges
    pf = {k: np.asarray(v, np.float64) for k, v in result.per_function.items()}
    n, seconds = pop.num_functions, pop.minutes * 60.0
    requests = max(pf["requests"].sum(), 1e-30)
    histogram = np.asarray(result.histogram, np.float64).sum(0)
    floor = np.exp(-pop.slo / pop.service_mean)
    weights = pop.workload.counts[pop.assignment, pop.start:pop.start + pop.minutes].sum(1)
    return {"slo_violations": float(pf["violations"].sum() / requests),
            "mean_latency": float(pf["latency_sum"].sum() / requests),
            "p99_latency": float(histogram_quantile(histogram, edges, 0.99, edges[-1])),
            "allocated_cores": float(pf["allocated"].sum() / n / seconds),
            "used_cores": float(pf["used"].sum() / n / seconds),
            "cold_starts_per_hour": float(pf["cold_starts"].sum() / n / (seconds / 3600)),
            "backlog_at_end": float(pf["backlog"].sum()),
            "violations_floor": float((floor * weights).sum() / max(weights.sum(), 1e-30)),
            "mean_pressure": float(np.mean(np.asarray(result.series["pressure"]))),
            "requests": float(requests),
            "objective": float((pf["violations"].sum() + price * pf["allocated"].sum()) / requests)}


@dataclasses.dataclass
class TrainingRun:
    """A trained policy and what its training recorded.

    Attributes:
      policy: the learned ``OnlineNAC`` (still learning; ``.deployed()`` freezes it).
      history: per actor phase diagnostics, all episodes in order (``History.as_numpy``).
      episodes: per episode summaries (``summarize`` on the training population).
      seconds: wall time of the training.
    """

    policy: OnlineNAC
    history: dict[str, np.ndarray]
    episodes: list[dict[str, float]]
    seconds: float


def train_online(policy: OnlineNAC, platform: Platform, pop: Population, episodes: int, key: jax.Array,
                 max_containers: int, log: Callable[[str], None] | None = None) -> TrainingRun:
    """``episodes`` passes of ``policy`` learning on ``pop`` (each pass starts from the
    weights the previous one ended with; the platform restarts warm)."""
    if not (isinstance(episodes, int) and episodes >= 1):
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    functions, arrivals = pop.inputs()
    policy = dataclasses.replace(policy.for_functions(pop.service_mean, pop.slo), day_start=pop.start * 60.0)
    histories, summaries = [], []
    begin = time.perf_counter()
    for episode, episode_key in enumerate(jax.random.split(key, episodes)):
        result = simulate(platform, functions, arrivals, policy, episode_key, minutes=pop.minutes,
                          initial_containers=warm_start(pop, max_containers))
        policy = policy.learned(result.policy_state)
        histories.append(result.policy_state[2].as_numpy())
        summaries.append(summarize(result, pop, policy.price))
        if log is not None:
            s, h = summaries[-1], histories[-1]
            log(f"  episode {episode + 1}/{episodes}: violations {s['slo_violations']:.4f}, cores/fn "
                f"{s['allocated_cores']:.2f}, objective {s['objective']:.4f}, last TD error {h['td_error'][-1]:.3g}, "
                f"entropy {h['entropy'][-1]:.2f} ({time.perf_counter() - begin:.0f} s)")
    history = {name: np.concatenate([h[name] for h in histories]) for name in histories[0]}
    return TrainingRun(policy, history, summaries, time.perf_counter() - begin)


def deploy(policy: OnlineNAC, pop: Population, greedy: bool = False) -> OnlineNAC:
    """The frozen policy for the evaluation population ``pop``."""
    return dataclasses.replace(policy.deployed(greedy).for_functions(pop.service_mean, pop.slo),
                               day_start=pop.start * 60.0)


def run_policy(platform: Platform, pop: Population, policy: Any, key: jax.Array, max_containers: int,
               price: float = 0.0, edges: np.ndarray | None = None) -> dict[str, float]:
    """``summarize`` of one evaluation run of ``policy`` on ``pop``."""
    functions, arrivals = pop.inputs()
    edges = latency_edges() if edges is None else edges
    result = simulate(platform, functions, arrivals, policy, key, minutes=pop.minutes, edges=edges,
                      initial_containers=warm_start(pop, max_containers))
    return summarize(result, pop, price, edges)


def mean_rows(rows: list[dict]) -> list[dict]:
    """Mean over evaluation days per (policy, knob) of ``MEAN_METRICS``, each with its
    min and max over the days (``NAME_range``)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["policy"], r["knob"]), []).append(r)
    out = []
    for (family, knob), group in groups.items():
        entry = {"policy": family, "knob": knob, "days": len(group)}
        for name in MEAN_METRICS:
            values = np.array([g[name] for g in group], np.float64)
            entry[name] = float(values.mean())
            entry[name + "_range"] = [float(values.min()), float(values.max())]
        out.append(entry)
    return out


def frontier_at(points, cores: float) -> float | None:
    """A swept baseline's SLO violations at ``cores`` per function: its Pareto frontier
    (the points that no other point beats on both cores and violations, e.g. of a sweep
    over targets at two CPU requests) joined linearly in cores; None outside its range
    (no extrapolation: "at no more CPU" needs a baseline point at or above those cores)."""
    points = sorted(points)
    if not points:
        return None
    frontier = [points[0]]
    for c, v in points[1:]:
        if v < frontier[-1][1]:
            frontier.append((c, v))
    xs = np.array([c for c, _ in frontier])
    ys = np.array([v for _, v in frontier])
    if cores < points[0][0] or cores > points[-1][0]:
        return None
    return float(np.interp(cores, xs, ys))


def verdicts(means: list[dict], learned_prefix: str = "MFG-NAC", baselines=("KPA", "HPA"),
             independent: str = "independent RL targets", paired: str = "MFG-NAC targets") -> list[dict]:
    """Issue 16's targets on one setting's mean rows: for each learned point, its SLO
    violations divided by each baseline's at the same cores (``frontier_at``: below 0.7
    is "30% fewer at no more CPU"), and independent RL's p99 over the paired MFG-NAC's
    at the same knob (price)."""
    by_key = {(r["policy"], r["knob"]): r for r in means}
    frontier = {base: [(r["allocated_cores"], r["slo_violations"]) for (f, _), r in by_key.items() if f == base]
                for base in baselines}
    out = []
    for (family, knob), r in by_key.items():
        if not family.startswith(learned_prefix):
            continue
        entry = {"policy": family, "knob": knob, "cores": r["allocated_cores"], "violations": r["slo_violations"],
                 "p99_latency": r["p99_latency"]}
        for base in baselines:
            at = frontier_at(frontier[base], r["allocated_cores"]) if frontier[base] else None
            entry[f"vs {base}"] = None if at is None else r["slo_violations"] / at
        other = by_key.get((independent, knob))
        if other is not None and family == paired:
            entry["p99 independent / MFG"] = other["p99_latency"] / r["p99_latency"]
        out.append(entry)
    return out


# Q-learning's state: the load bin of the arrivals over its 30 s learning period, edges at
# 0.01, 0.1, 1, 10 and 100 req/s (the decades the synthetic days' functions span); its
# actions: the KPA targets the learned policies and the KPA sweep use
Q_LEARNING_EDGES = np.log(np.array([0.01, 0.1, 1.0, 10.0, 100.0]))
Q_LEARNING_TARGETS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def untrained_q_learning(num_functions: int, price: float, cpu: float = 1.0) -> QLearningKPA:
    """The comparison's per-function Q-learning (``QLearningKPA`` on ``Q_LEARNING_EDGES`` and
    ``Q_LEARNING_TARGETS``, its defaults otherwise), learning, with a zero table."""
    return QLearningKPA.untrained(num_functions, Q_LEARNING_EDGES, targets=Q_LEARNING_TARGETS, price=price, cpu=cpu)


def q_learning_sweep(train: Population, platform: Platform, prices, cpus, episodes: int, key: jax.Array,
                     max_containers: int, log: Callable[[str], None] | None = None) -> list[tuple[float, float, Any]]:
    """[(price, cpu, frozen policy)]: ``untrained_q_learning`` trained by ``train_q_learning``
    on ``train`` (another day of the evaluation's functions) at each price and CPU request,
    every one from the same ``key``."""
    out = []
    for cpu in cpus:
        for price in prices:
            if log is not None:
                log(f"training Q-learning at price {price:g}, cpu {cpu:g} ({episodes} x {train.minutes} min)")
            frozen, _ = train_q_learning(untrained_q_learning(train.num_functions, price, cpu), platform, train,
                                         episodes, key, max_containers, log=log)
            out.append((float(price), float(cpu), frozen))
    return out


def train_q_learning(policy: QLearningKPA, platform: Platform, pop: Population, episodes: int, key: jax.Array,
                     max_containers: int, log: Callable[[str], None] | None = None) -> tuple[QLearningKPA, float]:
    """``episodes`` passes of per-function Q-learning (``QLearningKPA``) on ``pop``, each
    starting from the table the previous one ended with; returns (the greedy frozen
    policy, wall seconds).

    ``pop`` is another day of the evaluation's own functions, row for row
    (``generate_functions(..., day=d)`` with ``Workload.from_trace(keep_idle=True)``): the
    table holds one row per function, so it can only be tested on the functions it
    learned, and the protocol keeps the day it learns on apart from the day it is tested on.
    """
    if not (isinstance(episodes, int) and episodes >= 1):
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    functions, arrivals = pop.inputs()
    begin = time.perf_counter()
    for episode, episode_key in enumerate(jax.random.split(key, episodes)):
        result = simulate(platform, functions, arrivals, policy, episode_key, minutes=pop.minutes,
                          initial_containers=warm_start(pop, max_containers))
        policy = dataclasses.replace(policy, q_values=result.policy_state[0])
        if log is not None:
            s = summarize(result, pop, float(policy.price))
            log(f"  Q-learning episode {episode + 1}/{episodes}: violations {s['slo_violations']:.4f}, cores/fn "
                f"{s['allocated_cores']:.2f}, objective {s['objective']:.4f} ({time.perf_counter() - begin:.0f} s)")
    return policy.frozen(policy.q_values), time.perf_counter() - begin
