"""The online NAC policy against the upstream autoscalers on the tick simulator (issue 16).

    python benchmarks/serverless_learned.py compare [--functions 1000] [--eval-days 2 3 4 5 6]
    python benchmarks/serverless_learned.py compare --learners neural --results benchmarks/results_serverless_neural.json
    python benchmarks/serverless_learned.py report   # tables, verdicts and docs/img/serverless_frontier.png
    python benchmarks/serverless_learned.py transfer [--functions 100000] [--minutes 60]

``compare`` trains, per cluster setting (roomy, tight, congested), the online NAC policy
(``mfg.serverless.learned.OnlineNAC``, its defaults) on the training day (a synthetic
Azure-like day of 1,000 functions, workload seed 1, the whole day, ``--episodes``
passes) at each price of ``--prices``, with target actions and with one-step moves, and
independent RL (the same learner trained without contention), then evaluates every
policy frozen on held-out evaluation days (workload seeds ``--eval-days``, never used
while the method was developed; 15:00-21:00, the daily peak inside), against the KPA and
the HPA at each of their swept targets.  Per setting it prints the table of
docs/serverless.md and the verdicts of issue 16's targets at equal CPU (each
baseline's frontier interpolated linearly in cores between its swept points).  With
``--learners neural`` it trains and evaluates only the neural learner
(``mfg.serverless.learned_neural.NeuralOnlineNAC``, MFG-NAC at the middle price), into
its own results file; ``report`` merges the files, prints the tables and verdicts, and
draws the frontier plot.

``transfer`` trains at N = 1,000 (tight, price 0.02) and evaluates the same policy at
N = 1,000 and at ``--functions`` on the first held-out day (``--minutes`` from 15:00),
with wall times.

Results go to benchmarks/results_serverless_learned.json (or ``--results``; rewritten
atomically after every setting).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax

from mfg.serverless.comparison import deploy, mean_rows, population, run_policy, train_online, verdicts
from mfg.serverless.hpa import HPAConfig
from mfg.serverless.kpa import KPAConfig
from mfg.serverless.learned import MoveActions, OnlineNAC
from mfg.serverless.learned_neural import NeuralOnlineNAC
from mfg.serverless.platform import Platform
from mfg.serverless.policies import HPA, KPA
from mfg.serverless.settings import SETTINGS, Workload
from mfg.serverless.workloads import generate_functions

RESULTS = Path(__file__).with_name("results_serverless_learned.json")
NEURAL_RESULTS = Path(__file__).with_name("results_serverless_neural.json")
# eta of the neural learner's natural step: the linear default (25) made a 2-hour,
# 100-function training flip most of the policy every phase (mean TV 0.7-0.86); 2.5
# was chosen after seeing that, before any comparison of the neural learner
NEURAL_ACTOR_RATE = 2.5
MAX_CONTAINERS = 200
POOL = 2000                      # functions per synthetic day (the population is drawn from them)
KPA_TARGETS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
HPA_TARGETS = (0.1, 0.2, 0.3, 0.5, 0.8)


def day(seed: int) -> Workload:
    return Workload.from_trace(generate_functions(POOL, seed=seed), max_containers=MAX_CONTAINERS)


def save(results: dict, path: Path) -> None:
    """Write the results atomically (a crash leaves the previous file whole)."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    with os.fdopen(handle, "w") as out:
        json.dump(results, out, indent=1)
    os.replace(name, path)


def learners(args, train, setting):
    """{(family, knob): trained policy} for one setting."""
    capacity = train.capacity(setting)
    contended = Platform(max_containers=MAX_CONTAINERS, capacity=capacity)
    alone = Platform(max_containers=MAX_CONTAINERS)                  # no contention: independent RL
    trained = {}
    if args.learners == "neural":
        price = args.prices[len(args.prices) // 2]
        policy = NeuralOnlineNAC.untrained(train.service_mean, train.slo, price=price, max_containers=MAX_CONTAINERS,
                                           actor_rate=NEURAL_ACTOR_RATE)
        print(f"{setting}: training MFG-NAC neural targets at price {price} ...", flush=True)
        run = train_online(policy, contended, train, args.episodes, jax.random.key(0), MAX_CONTAINERS, log=print)
        trained[("MFG-NAC neural targets", f"price {price}")] = (run.policy, run.seconds, run.history)
        return trained
    for price in args.prices:
        for family, platform, extra in (("MFG-NAC targets", contended, {}),
                                        ("independent RL targets", alone, {})):
            policy = OnlineNAC.untrained(train.service_mean, train.slo, price=price, max_containers=MAX_CONTAINERS,
                                         **extra)
            print(f"{setting}: training {family} at price {price} ...", flush=True)
            run = train_online(policy, platform, train, args.episodes, jax.random.key(0), MAX_CONTAINERS, log=print)
            trained[(family, f"price {price}")] = (run.policy, run.seconds, run.history)
    price = args.prices[len(args.prices) // 2]
    policy = OnlineNAC.untrained(train.service_mean, train.slo, price=price, max_containers=MAX_CONTAINERS,
                                 actions=MoveActions())
    print(f"{setting}: training MFG-NAC moves at price {price} ...", flush=True)
    run = train_online(policy, contended, train, args.episodes, jax.random.key(0), MAX_CONTAINERS, log=print)
    trained[("MFG-NAC moves", f"price {price}")] = (run.policy, run.seconds, run.history)
    return trained


def compare(args):
    train = population(day(args.train_day), args.functions, 0)
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.exists() else {}
    results["compare_args"] = vars(args)
    for setting in args.settings:
        trained = learners(args, train, setting)
        rows = []
        for seed in args.eval_days:
            pop = population(day(seed), args.functions, 0, start=900, minutes=360)
            platform = Platform(max_containers=MAX_CONTAINERS, capacity=pop.capacity(setting))
            candidates = [] if args.learners == "neural" else (
                [("KPA", f"target {t}", KPA(KPAConfig(target=t)), 0.0) for t in KPA_TARGETS]
                + [("HPA", f"target {u}", HPA(HPAConfig(target_utilization=u, max_replicas=MAX_CONTAINERS)), 0.0)
                   for u in HPA_TARGETS])
            candidates += [(family, knob, deploy(policy, pop), float(policy.price))
                           for (family, knob), (policy, _, _) in trained.items()]
            for family, knob, policy, price in candidates:
                start = time.perf_counter()
                row = {"setting": setting, "eval_day": seed, "policy": family, "knob": knob,
                       **run_policy(platform, pop, policy, jax.random.key(seed), MAX_CONTAINERS, price),
                       "wall_s": time.perf_counter() - start}
                rows.append(row)
                print(f"{setting:9s} day {seed} {family:24s} {knob:11s} violations {row['slo_violations']:.4f} "
                      f"p99 {row['p99_latency']:7.2f} s  cores/fn {row['allocated_cores']:.2f}  "
                      f"cold/h {row['cold_starts_per_hour']:.1f}  floor {row['violations_floor']:.4f}", flush=True)
        means = mean_rows(rows)
        results[setting] = {"rows": rows, "means": means, "verdicts": verdicts(means),
                            "training": {f"{f} / {k}": {"seconds": s, "last_phase": {n: float(h[n][-1]) for n in h}}
                                         for (f, k), (_, s, h) in trained.items()}}
        save(results, path)
        print_table(setting, means, results[setting]["verdicts"])


def print_table(setting, means, verdict_rows):
    print(f"\n| {setting} | knob | SLO violations | / floor | p99 (s) | cores / function | cold starts / fn-hour |")
    print("|---|---|---|---|---|---|---|")
    for r in means:
        lo, hi = r["slo_violations_range"]
        print(f"| {r['policy']} | {r['knob']} | {r['slo_violations']:.4f} ({lo:.4f}-{hi:.4f}) | "
              f"{r['slo_violations'] / r['violations_floor']:.1f}x | {r['p99_latency']:.1f} | "
              f"{r['allocated_cores']:.2f} | {r['cold_starts_per_hour']:.1f} |")
    print(f"violations floor {means[0]['violations_floor']:.4f}")
    for v in verdict_rows:
        parts = [f"{k} {v[k]:.3f}" for k in ("vs KPA", "vs HPA", "p99 independent / MFG") if v.get(k) is not None]
        print(f"  {v['policy']} {v['knob']}: violations {v['violations']:.4f} at {v['cores']:.2f} cores; "
              + ", ".join(parts or ["outside both frontiers' CPU range"]))


def transfer(args):
    train = population(day(args.train_day), 1000, 0)
    platform = Platform(max_containers=MAX_CONTAINERS, capacity=train.capacity("tight"))
    policy = OnlineNAC.untrained(train.service_mean, train.slo, price=0.02, max_containers=MAX_CONTAINERS)
    run = train_online(policy, platform, train, args.episodes, jax.random.key(0), MAX_CONTAINERS, log=print)
    rows = []
    for n in (1000, args.functions):
        pop = population(day(args.eval_days[0]), n, 0, start=900, minutes=args.minutes)
        platform = Platform(max_containers=MAX_CONTAINERS, capacity=pop.capacity("tight"))
        start = time.perf_counter()
        row = {"functions": n, **run_policy(platform, pop, deploy(run.policy, pop), jax.random.key(0),
                                            MAX_CONTAINERS, 0.02), "wall_s": time.perf_counter() - start}
        rows.append(row)
        print(f"N={n}: violations {row['slo_violations']:.4f}, p99 {row['p99_latency']:.2f} s, cores/fn "
              f"{row['allocated_cores']:.3f}, mean pressure {row['mean_pressure']:.3f} ({row['wall_s']:.0f} s)",
              flush=True)
    small, large = rows
    for name in ("slo_violations", "p99_latency", "allocated_cores", "mean_latency"):
        print(f"  {name}: N={large['functions']} / N=1000 = {large[name] / small[name]:.4f}")
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.exists() else {}
    results["transfer"] = {"args": vars(args), "training_s": run.seconds, "rows": rows}
    save(results, path)


def report(args):
    """Merge the results files, print each setting's table and verdicts, draw the plot."""
    from experiments.plots import plot_frontiers

    merged, floors = {}, {}
    for name in args.merge:
        path = Path(name)
        if not path.exists():
            print(f"(no {path}; skipped)")
            continue
        for setting, entry in json.loads(path.read_text()).items():
            if setting in SETTINGS:
                merged.setdefault(setting, []).extend(entry["rows"])
    means_by_setting = {}
    for setting in SETTINGS:
        if setting not in merged:
            continue
        means = mean_rows(merged[setting])
        means_by_setting[setting] = means
        floors[setting] = means[0]["violations_floor"]
        print_table(setting, means, verdicts(means))
    if means_by_setting:
        out = Path(__file__).parents[1] / "docs" / "img" / "serverless_frontier.png"
        plot_frontiers(means_by_setting, str(out), floor=floors)
        print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["compare", "transfer", "report"])
    parser.add_argument("--learners", choices=["linear", "neural"], default="linear",
                        help="compare: the linear learners (and the baselines) or the neural one alone")
    parser.add_argument("--results", default=str(RESULTS), help="results file written")
    parser.add_argument("--merge", nargs="+", default=[str(RESULTS), str(NEURAL_RESULTS)],
                        help="report: the results files merged")
    parser.add_argument("--functions", type=int, default=None)
    parser.add_argument("--minutes", type=int, default=60, help="transfer: minutes evaluated from 15:00")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--prices", nargs="+", type=float, default=[0.01, 0.02, 0.04],
                        help="prices of a core-second (in SLO violations) the learner trains at")
    parser.add_argument("--episodes", type=int, default=2, help="passes over the training day")
    parser.add_argument("--train-day", type=int, default=1)
    parser.add_argument("--eval-days", nargs="+", type=int, default=[2, 3, 4, 5, 6])
    args = parser.parse_args()
    if args.what == "report":
        report(args)
    elif args.what == "compare":
        args.functions = args.functions or 1000
        compare(args)
    else:
        args.functions = args.functions or 100_000
        transfer(args)


if __name__ == "__main__":
    main()
