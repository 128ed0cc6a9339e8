"""The tick simulator (mfg/serverless/simulator.py): its speed, and today's autoscalers on
the three cluster settings (issue 15, acceptance 4 and the results table of 5).

    python benchmarks/serverless_ticks.py speed [--functions 100000] [--minutes 10]
    python benchmarks/serverless_ticks.py baselines [--functions 1000] [--seeds 2]
    python benchmarks/serverless_ticks.py meanfield [--functions 1000] [--seeds 2]

``speed`` times KPA and the tabular MFG policy (the equilibrium of the default
experiment's game, solved here with its solver settings) on a synthetic Azure-like day:
function-steps per second (one function advanced by one 2 s tick) after compilation, and
the wall time of the simulated stretch.  ``baselines`` sweeps each baseline's knob on the
roomy, tight and congested settings (``mfg.serverless.settings``) and prints the table of
docs/serverless.md: SLO violations, mean and p99 latency, allocated cores per function,
cold starts per function-hour, and the violations floor (exp(-slo / s): what no policy
avoids with exponential service), with the tabular MFG policy of the minute-level game
(``mfg run``'s) as it is.  ``meanfield`` compares, on the tight setting, the KPA's rate
rule sized from an idle cluster's service rate with the same rule reading the published
pressure.  Results also go to benchmarks/results_serverless_ticks.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from mfg.serverless.evaluation import histogram_quantile
from mfg.serverless.hpa import HPAConfig
from mfg.serverless.kpa import KPAConfig
from mfg.serverless.platform import Platform
from mfg.serverless.policies import HPA, KPA, Static, TabularMoves
from mfg.serverless.settings import SETTINGS, Workload, capacity_of
from mfg.serverless.simulator import latency_edges, simulate
from mfg.serverless.workloads import generate_functions

RESULTS = Path(__file__).with_name("results_serverless_ticks.json")
MAX_CONTAINERS = 200


def tabular_mfg_policy(contention: bool = True):
    """The default experiment's game and its exact-NAC equilibrium (experiments/default.yaml);
    with ``contention=False`` the same solver on the game without contention (independent
    RL: every function trained as if alone, as ``mfg run`` does)."""
    from experiments.build import build_game, build_solver
    from experiments.config import load_config
    from mfg.serverless.game import cluster_model_of
    from solvers import run

    config = load_config(Path(__file__).parents[1] / "experiments" / "default.yaml")
    if not contention:
        config.game.params = {**config.game.params, "contention": 0.0}
    game = build_game(config)
    solver = build_solver(config, game)
    result = run(solver, game, config.run.iterations, chunk_size=config.run.chunk_size, progress=False,
                 stop_exploitability=config.run.stop_exploitability)
    policy = np.asarray(result.state.policy)
    policy = policy[0] if policy.ndim == 3 else policy
    model = cluster_model_of(game)
    return TabularMoves(policy, np.asarray(game.params["load_edges"]), model.max_containers, model.max_cpu_steps,
                        model.cpu_step)


def warm_start(workload, assignment, start):
    """Every policy starts from the containers its functions' first minute keeps 70% busy
    (so that no policy pays for a cold cluster at the start of the stretch)."""
    from mfg.serverless.comparison import Population, warm_start as package_warm_start
    return package_warm_start(Population(workload, np.asarray(assignment), start, 1), MAX_CONTAINERS)


def summary(result, workload, assignment, minutes, edges):
    pf = {k: np.asarray(v, np.float64) for k, v in result.per_function.items()}
    n = len(assignment)
    requests = pf["requests"].sum()
    histogram = np.asarray(result.histogram, np.float64).sum(0)
    floor = np.exp(-workload.slo[assignment] / workload.service_mean[assignment])
    weights = workload.counts[assignment].sum(1)
    return {"slo_violations": float(pf["violations"].sum() / requests),
            "mean_latency": float(pf["latency_sum"].sum() / requests),
            "p99_latency": float(histogram_quantile(histogram, edges, 0.99, edges[-1])),
            "allocated_cores": float(pf["allocated"].sum() / n / (minutes * 60)),
            "used_cores": float(pf["used"].sum() / n / (minutes * 60)),
            "cold_starts_per_hour": float(pf["cold_starts"].sum() / n / (minutes / 60)),
            "backlog_at_end": float(pf["backlog"].sum()),
            "violations_floor": float((floor * weights).sum() / weights.sum()),
            "mean_pressure": float(np.mean(result.series["pressure"]))}


def speed(args):
    workload = Workload.from_trace(generate_functions(2000, seed=0), max_containers=MAX_CONTAINERS)
    assignment = workload.sample(args.functions, 0)
    functions, arrivals = workload.inputs(assignment, start=args.start)
    platform = Platform(max_containers=MAX_CONTAINERS, contention_passes=args.contention_passes,
                        capacity=capacity_of("tight", workload, assignment))
    policies = {"KPA (target 1)": KPA(KPAConfig(target=1.0)), "tabular MFG policy": tabular_mfg_policy()}
    steps = args.functions * args.minutes * platform.ticks_per_minute
    rows = {}
    for name, policy in policies.items():
        start = time.perf_counter()
        jax.block_until_ready(simulate(platform, functions, arrivals, policy, jax.random.key(0),
                                       minutes=args.minutes).per_function)
        first = time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(simulate(platform, functions, arrivals, policy, jax.random.key(1),
                                       minutes=args.minutes).per_function)
        wall = time.perf_counter() - start
        rows[name] = {"functions": args.functions, "minutes": args.minutes, "wall_s": wall,
                      "first_call_s": first, "function_steps_per_s": steps / wall,
                      "day_s_extrapolated": wall * 1440 / args.minutes}
        print(f"{name:22s} N={args.functions} {args.minutes} min: {wall:.1f} s "
              f"({steps / wall / 1e6:.2f} M function-steps/s; first call {first:.1f} s; a day ~ "
              f"{wall * 1440 / args.minutes:.0f} s)", flush=True)
    return rows


def baselines(args):
    workload = Workload.from_trace(generate_functions(2000, seed=0), max_containers=MAX_CONTAINERS)
    edges = latency_edges()
    sweeps = {"static": [(f"{n} containers", Static(float(n), 1.0)) for n in (1, 4, 16)],
              "HPA": [(f"target {u}", HPA(HPAConfig(target_utilization=u, max_replicas=MAX_CONTAINERS)))
                      for u in (0.3, 0.5, 0.8)],
              "KPA": [(f"target {c}", KPA(KPAConfig(target=c))) for c in (0.3, 0.5, 1.0)],
              "tabular MFG (minute game)": [("default run", tabular_mfg_policy())],
              "independent RL (minute game)": [("no contention", tabular_mfg_policy(contention=False))]}
    if args.policies:
        sweeps = {family: knobs for family, knobs in sweeps.items() if family in args.policies}
    rows = []
    for setting in SETTINGS:
        for seed in range(args.seeds):
            assignment = workload.sample(args.functions, seed)
            functions, arrivals = workload.inputs(assignment, start=args.start)
            capacity = capacity_of(setting, workload, assignment)
            platform = Platform(max_containers=MAX_CONTAINERS, contention_passes=args.contention_passes,
                                capacity=capacity)
            share = workload.contended_share(capacity, assignment)
            for family, knobs in sweeps.items():
                for knob, policy in knobs:
                    result = simulate(platform, functions, arrivals, policy, jax.random.key(seed),
                                      minutes=args.minutes, edges=edges,
                                      initial_containers=warm_start(workload, assignment, args.start))
                    row = {"setting": setting, "seed": seed, "capacity": capacity, "contended_minutes": share,
                           "policy": family, "knob": knob, **summary(result, workload, assignment, args.minutes,
                                                                     edges)}
                    rows.append(row)
                    print(f"{setting:9s} seed {seed} {family:6s} {knob:14s} violations {row['slo_violations']:.4f} "
                          f"p99 {row['p99_latency']:8.2f} s  cores/fn {row['allocated_cores']:.2f}  "
                          f"cold/h {row['cold_starts_per_hour']:.1f}  floor {row['violations_floor']:.4f}", flush=True)
    return rows


def meanfield(args):
    """Acceptance 3: every function on the tight setting uses the KPA's rate rule sized from
    an idle cluster's service rate, or the same rule that reads the published pressure."""
    workload = Workload.from_trace(generate_functions(2000, seed=0), max_containers=MAX_CONTAINERS)
    edges = latency_edges()
    rows = []
    for seed in range(args.seeds):
        assignment = workload.sample(args.functions, seed)
        functions, arrivals = workload.inputs(assignment, start=args.start)
        capacity = capacity_of("tight", workload, assignment)
        platform = Platform(max_containers=MAX_CONTAINERS, contention_passes=args.contention_passes,
                            capacity=capacity)
        service = np.asarray(workload.service_mean[assignment], np.float32)
        for target in (0.5, 1.0):
            for aware in (False, True):
                policy = KPA(KPAConfig(target=target), service_mean=service, pressure_aware=aware)
                result = simulate(platform, functions, arrivals, policy, jax.random.key(seed), minutes=args.minutes,
                                  edges=edges, initial_containers=warm_start(workload, assignment, args.start))
                row = {"seed": seed, "target": target, "pressure_aware": aware,
                       **summary(result, workload, assignment, args.minutes, edges)}
                rows.append(row)
                print(f"tight seed {seed} rate rule target {target} {'pressure-aware' if aware else 'idle-sized   '} "
                      f"violations {row['slo_violations']:.4f} p99 {row['p99_latency']:8.2f} s mean "
                      f"{row['mean_latency']:.2f} s cores/fn {row['allocated_cores']:.2f} pressure "
                      f"{row['mean_pressure']:.2f}", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "baselines", "meanfield"])
    parser.add_argument("--functions", type=int, default=None)
    parser.add_argument("--minutes", type=int, default=None)
    parser.add_argument("--start", type=int, default=900, help="first minute of the day (900: 15:00, before the peak)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=None,
                        help="baselines: only these families (their rows replace the stored ones)")
    parser.add_argument("--contention-passes", type=int, default=Platform.contention_passes,
                        help=f"Platform.contention_passes (default {Platform.contention_passes}; 0: the one-shot "
                             "estimate; other values are stored apart)")
    args = parser.parse_args()
    if args.what == "speed":
        args.functions = args.functions or 100_000
        args.minutes = args.minutes or 10
        rows = speed(args)
    else:
        args.functions = args.functions or 1000
        args.minutes = args.minutes or 360
        rows = baselines(args) if args.what == "baselines" else meanfield(args)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = (args.what if args.contention_passes == Platform.contention_passes
           else f"{args.what} (contention_passes {args.contention_passes})")
    if args.what == "baselines" and args.policies and key in results:
        kept = [row for row in results[key]["rows"] if row["policy"] not in args.policies]
        rows = kept + rows
    results[key] = {"args": vars(args), "rows": rows}
    RESULTS.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
