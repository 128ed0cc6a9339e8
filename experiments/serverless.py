"""The serverless comparison: a trained MFG policy against today's autoscalers.

After a run of a solver on the tabular serverless game, ``compare`` deploys its policy on
the particle simulator (``mfg.serverless.particles``) next to the baselines of ``mfg.serverless.autoscalers``,
on the same workloads (one per seed) and the same population, and writes:

  evaluation/summary.json    every policy's metrics (mean and 95% CI over seeds), the
                             sweep points and the targets' verdicts
  evaluation/table.md        the same as a Markdown table (the docs' results table)
  evaluation/per_function.csv  per-function metrics of every policy (seed 0)
  plots/latency_cdf.png, plots/slo_vs_cpu.png, plots/pressure.png

Policies: ``MFG-NAC`` (the run's policy), ``Independent RL`` (the same solver on the game
without contention: each function trained as if alone), per-function Q-learning of the
KPA target (trained on another day of the same functions, ``q_learning_loads``), and
sweeps of the static size, the HPA target utilization and the KPA target
concurrency.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import json
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from mfg.serverless.autoscalers import (ConcurrencyAutoscaler, HorizontalAutoscaler, QLearningAutoscaler, StaticPolicy,
                             TabularPolicy)
from mfg.serverless.cluster import ClusterModel, fit_rates_to_cluster
from mfg.serverless.evaluation import METRICS, PolicyEvaluation, evaluate
from mfg.serverless.game import cluster_model_of, serverless
from mfg.serverless.particles import TraceLoad, simulate
from experiments.build import build_game, build_solver
from experiments.files import atomic_write
from mfg.serverless.workloads import generate_functions, read_trace

__all__ = ["compare", "build_loads", "load_edges", "independent_policy", "train_q_learning", "q_learning_loads",
           "target_verdicts"]

MFG = "MFG-NAC"
INDEPENDENT = "Independent RL"
Q_LEARNING = "Q-learning (KPA target)"


def load_edges(game) -> np.ndarray:
    """The tabular serverless game's load-bin edges in log(rate) (``params["load_edges"]``)."""
    return np.asarray(game.params["load_edges"], np.float64)


def build_pools(model: ClusterModel, evaluation, peak_load: float = 0.5) -> list[np.ndarray]:
    """One rate pool [F, T] (requests/s, fitted to the cluster) per seed.

    ``workload: synthetic`` draws a fresh synthetic day of ``pool_functions`` functions per
    seed (``generate_functions``); a folder path reads that trace's day (the real Azure
    trace, or any in its format) for every seed.  Rates are fitted to the cluster with the
    game's ``peak_load`` (``mfg.serverless.cluster.fit_rates_to_cluster``).
    """
    if evaluation.workload != "synthetic":
        rates = fit_rates_to_cluster(read_trace(evaluation.workload, evaluation.day).rates_per_second(), model,
                                     peak_load)
        return [rates] * evaluation.seeds
    return [fit_rates_to_cluster(generate_functions(evaluation.pool_functions, seed=evaluation.seed + seed)
                                 .rates_per_second(), model, peak_load) for seed in range(evaluation.seeds)]


def build_loads(model: ClusterModel, evaluation, peak_load: float = 0.5,
                log: Callable[[str], None] = print) -> list[TraceLoad]:
    """One ``TraceLoad`` of ``num_functions`` functions per seed, sampled from that seed's
    pool (``build_pools``; with replacement when N exceeds the pool), so that every N
    draws from the same population and each seed of a real trace samples a different
    population from it.
    """
    loads = []
    for seed, rates in enumerate(build_pools(model, evaluation, peak_load)):
        loads.append(TraceLoad.sample(rates, evaluation.num_functions, seed=evaluation.seed + seed))
        log(f"workload seed {seed}: {loads[-1].num_functions} functions from a pool of {rates.shape[0]}")
    return loads


def _same_functions(other, today) -> np.ndarray:
    """[F_today, T] rates of ``today``'s functions on the trace day ``other``, matched by
    (owner, app, function) hash; a function absent from that day has no traffic."""
    where = {key: row for row, key in enumerate(zip(other.owners, other.apps, other.functions))}
    rates = other.rates_per_second()
    out = np.zeros((today.num_functions, rates.shape[1]), np.float64)
    for row, key in enumerate(zip(today.owners, today.apps, today.functions)):
        if key in where:
            out[row] = rates[where[key]]
    return out


def q_learning_day(evaluation) -> int:
    """The trace day Q-learning trains on: ``q_learning_train_day``, else the day after the
    evaluation's (the day before for day 14)."""
    if evaluation.q_learning_train_day is not None:
        return evaluation.q_learning_train_day
    return evaluation.day + 1 if evaluation.day < 14 else evaluation.day - 1


def q_learning_loads(model: ClusterModel, evaluation, loads: list[TraceLoad], peak_load: float = 0.5
                     ) -> list[TraceLoad]:
    """Q-learning's training load for each evaluation load of ``build_loads``: the same
    functions, particle for particle, on *another day* (its table has one row per
    function, so it is trained on the functions it is tested on, never on the test day).

    Synthetic: day 1 of each seed's functions (``generate_functions(..., day=1)``: new
    bursts and counts, the same functions in the same rows).  A trace folder: the day
    ``q_learning_day`` of the same trace, functions matched by their hashes."""
    if evaluation.workload == "synthetic":
        pools = [fit_rates_to_cluster(generate_functions(evaluation.pool_functions, seed=evaluation.seed + seed,
                                                         day=1).rates_per_second(), model, peak_load)
                 for seed in range(evaluation.seeds)]
        # day 0 keeps only invoked functions, so every row is in the evaluation's pool
    else:
        today = read_trace(evaluation.workload, evaluation.day)
        other = read_trace(evaluation.workload, q_learning_day(evaluation))
        active = np.flatnonzero(today.rates_per_second().sum(1) > 0)          # the rows of the evaluation's pool
        pools = [fit_rates_to_cluster(_same_functions(other, today), model, peak_load)[active]] * evaluation.seeds
    out = []
    for load, pool in zip(loads, pools):
        if pool.shape != tuple(np.shape(load.rates)):
            raise ValueError(f"Q-learning's training day has a pool of shape {pool.shape}, the evaluation's "
                             f"{tuple(np.shape(load.rates))}: the days do not hold the same functions")
        out.append(dataclasses.replace(load, rates=np.asarray(pool, np.asarray(load.rates).dtype)))
    return out


def independent_policy(config, log: Callable[[str], None] = print) -> np.ndarray:
    """The run's solver on the same game without contention: every function trained as if alone."""
    from solvers import run

    alone = config.model_copy(deep=True)
    alone.game.params = {**alone.game.params, "contention": 0.0}
    game = build_game(alone)
    solver = build_solver(alone, game)
    result = run(solver, game, alone.run.iterations, chunk_size=alone.run.chunk_size, progress=False,
                 stop_exploitability=alone.run.stop_exploitability, stop_residual=alone.run.stop_residual)
    log(f"independent RL: solved the contention-free game in {result.iterations} iterations, exploitability "
        f"{float(np.asarray(result.metrics['exploitability'])[..., -1].mean()):.2e}")
    return np.asarray(_first_seed(result.state.policy))


def _first_seed(policy):
    policy = np.asarray(policy)
    return policy[0] if policy.ndim == 3 else policy


def train_q_learning(model: ClusterModel, load: TraceLoad, edges: np.ndarray, key: jax.Array,
                     days: int, **kwargs) -> QLearningAutoscaler:
    """Per-function Q-learning trained online for ``days`` replays of ``load`` (another day of
    the evaluation's functions, ``q_learning_loads``); returns the greedy policy."""
    policy = QLearningAutoscaler.untrained(load.num_functions, edges, **kwargs)
    for day in range(days):
        result = simulate(model, load, policy, jax.random.fold_in(key, 1000 + day))
        policy = dataclasses.replace(policy, q_values=result.policy_state[0])
    return policy.frozen(policy.q_values)


def build_policies(config, policy: np.ndarray, game, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every policy of the comparison, by name (sweep points named by their knob)."""
    evaluation = config.evaluation
    model = cluster_model_of(game)
    edges = load_edges(game)
    greedy = evaluation.deploy == "greedy"
    policies: dict[str, Any] = {MFG: TabularPolicy(policy, edges, model.max_containers, model.max_cpu_steps, greedy)}
    if evaluation.independent:
        policies[INDEPENDENT] = TabularPolicy(independent_policy(config, log), edges, model.max_containers,
                                              model.max_cpu_steps, greedy)
    cpu = model.max_cpu_steps
    for size in evaluation.static_containers:
        policies[f"Static ({size} containers)"] = StaticPolicy(int(size), cpu)
    for target in evaluation.hpa_target_utilization:
        policies[f"HPA (target {target:g})"] = HorizontalAutoscaler(float(target), cpu_steps=cpu)
    for target in evaluation.kpa_target_concurrency:
        policies[f"KPA (target {target:g})"] = ConcurrencyAutoscaler(float(target), cpu_steps=cpu)
    if evaluation.q_learning_days > 0:
        policies[Q_LEARNING] = QLearningAutoscaler.untrained(evaluation.num_functions, edges, cpu_steps=cpu)
    return policies


def family(name: str) -> str:
    """The policy family of a sweep point's name ("HPA (target 0.7)" -> "HPA")."""
    return name.split(" (")[0] if name.startswith(("Static", "HPA", "KPA")) else name


def target_verdicts(results: dict[str, PolicyEvaluation]) -> dict[str, Any]:
    """The issue's targets, computed from the results.

    * MFG-NAC vs the HPA-like and KPA-like baselines at no more allocated CPU: the
      baseline's SLO violations at MFG-NAC's CPU, interpolated linearly along its sweep
      (sorted by CPU); where MFG-NAC uses less CPU than every sweep point, the baseline's
      cheapest point (which then uses more CPU than MFG-NAC) is the comparison.
    * MFG-NAC's p99 latency vs independent RL's.
    """
    mfg_cpu, mfg_violations = results[MFG].metric("allocated_cpu")[0], results[MFG].metric("slo_violation_rate")[0]
    verdicts: dict[str, Any] = {}
    for baseline in ("HPA", "KPA"):
        points = sorted((r.metric("allocated_cpu")[0], r.metric("slo_violation_rate")[0])
                        for name, r in results.items() if family(name) == baseline)
        if not points:
            continue
        cpus, violations = np.array(points).T
        # np.interp holds the end values outside the sweep: below it, the baseline's cheapest
        # point (more CPU than MFG-NAC); above it, its most generous one.
        at_cpu = float(np.interp(mfg_cpu, cpus, violations))
        where = "below" if mfg_cpu < cpus[0] else "above" if mfg_cpu > cpus[-1] else "within"
        reduction = 1.0 - mfg_violations / at_cpu if at_cpu > 0 else float("nan")
        verdicts[f"vs {baseline}"] = {
            "baseline_violations_at_mfg_cpu": at_cpu, "mfg_violations": mfg_violations, "mfg_cpu": mfg_cpu,
            "baseline_cpu_range": [float(cpus[0]), float(cpus[-1])], "mfg_cpu_vs_sweep": where,
            "violation_reduction": reduction, "target": ">= 0.30", "met": bool(reduction >= 0.30)}
    if INDEPENDENT in results:
        ratio = results[INDEPENDENT].metric("p99_latency")[0] / results[MFG].metric("p99_latency")[0]
        verdicts["vs Independent RL"] = {"p99_ratio": ratio, "target": ">= 3", "met": bool(ratio >= 3.0)}
    return verdicts


def compare(config, policy: np.ndarray, game, out: Path, plots: Path,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the comparison of ``config.evaluation`` for the trained ``policy``.

    Writes summary.json, table.md and per_function.csv to ``out`` and the three plots
    to ``plots``; returns the summary.
    """
    evaluation = config.evaluation
    model = cluster_model_of(game)
    started = time.perf_counter()
    peak_load = config.game.params.get("peak_load", inspect.signature(serverless).parameters["peak_load"].default)
    loads = build_loads(model, evaluation, peak_load, log)
    policies = build_policies(config, _first_seed(policy), game, log)
    edges = load_edges(game)

    # Q-learning learns on another day of the same functions (issue 16, item 3)
    training = {id(load): other for load, other in zip(loads, q_learning_loads(model, evaluation, loads, peak_load))
                } if evaluation.q_learning_days > 0 else {}

    def prepare(name, candidate, load, key):
        if name != Q_LEARNING:
            return candidate
        return train_q_learning(model, training[id(load)], edges, key, evaluation.q_learning_days,
                                cpu_steps=candidate.cpu_steps)

    results = evaluate(model, loads, policies, key=jax.random.key(evaluation.seed), num_steps=evaluation.minutes,
                       prepare=prepare, progress=log)
    seconds = time.perf_counter() - started
    verdicts = target_verdicts(results)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "num_functions": evaluation.num_functions, "seeds": evaluation.seeds, "minutes": evaluation.minutes,
        "workload": evaluation.workload, "deploy": evaluation.deploy, "seconds": round(seconds, 2),
        "policies": {name: {m: {"mean": r.metric(m)[0], "ci95": r.metric(m)[1],
                                "per_seed": [run["overall"][m] for run in r.runs]} for m in METRICS}
                     for name, r in results.items()},
        "targets": verdicts,
    }
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    atomic_write(out / "table.md", markdown_table(results, verdicts, evaluation))
    _write_per_function(out / "per_function.csv", results)
    from experiments.plots import plot_latency_cdf, plot_pressure, plot_slo_vs_cpu

    plots.mkdir(parents=True, exist_ok=True)
    plot_latency_cdf(results, str(plots / "latency_cdf.png"))
    plot_slo_vs_cpu(results, str(plots / "slo_vs_cpu.png"), family)
    plot_pressure(results, str(plots / "pressure.png"), capacity_knee=model.knee)
    log(f"evaluation: {len(policies)} policies x {evaluation.seeds} seeds x {evaluation.num_functions} functions "
        f"in {seconds:.1f} s; wrote {out}")
    return summary


UNITS = {"mean_latency": "s", "p50_latency": "s", "p99_latency": "s", "slo_violation_rate": "",
         "allocated_cpu": "cores", "utilization": "", "cold_starts_per_hour": "/h", "reward": ""}


def markdown_table(results: dict[str, PolicyEvaluation], verdicts: dict, evaluation) -> str:
    """Every policy on every metric, mean +- 95% CI over seeds, and the targets' verdicts."""
    header = ["policy"] + [f"{m} ({UNITS[m]})" if UNITS[m] else m for m in METRICS]
    lines = [f"N = {evaluation.num_functions} functions, {evaluation.minutes} one-minute steps, "
             f"{evaluation.seeds} seeds (workload: {evaluation.workload}); mean +- 95% CI over seeds.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in results.items():
        cells = [name]
        for metric in METRICS:
            mean, half = result.metric(metric)
            cells.append(f"{mean:.4g} +- {half:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets:", ""]
    for name, verdict in verdicts.items():
        if "violation_reduction" in verdict:
            low, high = verdict["baseline_cpu_range"]
            reference = {"within": "interpolated at MFG-NAC's CPU",
                         "below": "at the baseline's cheapest point, which uses more CPU than MFG-NAC",
                         "above": "at the baseline's largest point, which uses less CPU than MFG-NAC"}
            lines.append(f"* MFG-NAC {name}: SLO violations {verdict['mfg_violations']:.4g} vs "
                         f"{verdict['baseline_violations_at_mfg_cpu']:.4g} ({reference[verdict['mfg_cpu_vs_sweep']]}; "
                         f"MFG-NAC {verdict['mfg_cpu']:.3g} cores, sweep {low:.3g}-{high:.3g}): "
                         f"{100 * verdict['violation_reduction']:.1f}% fewer; target >= 30%: "
                         f"{'met' if verdict['met'] else 'MISSED'}")
        else:
            lines.append(f"* MFG-NAC {name}: p99 latency {verdict['p99_ratio']:.3g}x lower; target >= 3x: "
                         f"{'met' if verdict['met'] else 'MISSED'}")
    return "\n".join(lines) + "\n"


def _write_per_function(path: Path, results: dict[str, PolicyEvaluation]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    names = ["requests"] + list(METRICS)
    writer.writerow(["policy", "function"] + names)
    for name, result in results.items():
        per = result.runs[0]["per_function"]
        for i in range(len(per["requests"])):
            writer.writerow([name, i] + [f"{float(per[m][i]):.6g}" for m in names])
    atomic_write(path, text.getvalue())
