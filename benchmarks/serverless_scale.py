"""Mean-field transfer and scale of the serverless evaluation (issue 4, acceptance 4).

A run's MFG policy (trained on the tabular game) and two baselines are simulated with
N = 1,000 and N = 100,000 functions drawn from the same synthetic days (one pool of
``pool_functions`` functions per seed), on this machine's CPU.

What "keeps its metrics" means here.  At N = 1,000 one cluster's metric is a noisy
sample: SLO violations are a ratio of request counts, and a few heavy functions of a
heavy-tailed pool carry most requests (one cluster's violation rate varies by about 15%
from sample to sample).  So at each size N the script simulates R independent clusters
of N functions (``mfg.serverless.particles.simulate_clusters``, one vmapped scan), each under its
own N-function mean field, and pools their functions (``mfg.serverless.evaluation.pool_clusters``).
R N is the same at every size (the largest size by default) and the clusters come from
``TraceLoad.partition``: the pool tiled to R N functions and cut into clusters, so the
N = 1,000 clusters together hold exactly the functions of the N = 100,000 one.  The
change between sizes is then the effect of N on the dynamics (how well the mean-field
approximation transfers), not the luck of which functions were drawn.  One cluster's
spread (mean and 95% range over the R clusters) is printed too: that is what a single
N = 1,000 evaluation would show.

Prints every metric at both sizes, the relative change, and the wall time per simulated
day (the first seed includes compilation; the time of the last seed is reported).

    python benchmarks/serverless_scale.py RUN_DIR [--sizes 1000 100000] [--seeds 2]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments.runner import RunFolder, restore_policy
from experiments.serverless import MFG, build_pools, load_edges
from mfg.serverless.autoscalers import ConcurrencyAutoscaler, HorizontalAutoscaler, TabularPolicy
from mfg.serverless.evaluation import METRICS, cluster, pool_clusters, summarize
from mfg.serverless.game import cluster_model_of
from mfg.serverless.particles import TraceLoad, simulate_clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--seeds", type=int, default=2, help="pools (synthetic days)")
    parser.add_argument("--functions-per-size", type=int, default=None,
                        help="R N simulated at every size (default: the largest size)")
    args = parser.parse_args()
    config, game, state, iteration = restore_policy(RunFolder(args.run_dir), with_evaluation=True)
    model = cluster_model_of(game)
    policy = np.asarray(state.policy)
    policy = policy[0] if policy.ndim == 3 else policy
    policies = {MFG: TabularPolicy(policy, load_edges(game), model.max_containers, model.max_cpu_steps),
                "HPA (target 0.7)": HorizontalAutoscaler(0.7, cpu_steps=model.max_cpu_steps),
                "KPA (target 0.7)": ConcurrencyAutoscaler(0.7, cpu_steps=model.max_cpu_steps)}
    evaluation = config.evaluation.model_copy(update={"seeds": args.seeds})
    total = args.functions_per_size or max(args.sizes)
    pools = build_pools(model, evaluation, config.game.params.get("peak_load", 0.5))
    print(f"policy of iteration {iteration} of {args.run_dir}; {args.seeds} pools of {evaluation.pool_functions} "
          f"functions, {evaluation.minutes} minutes, {total} functions simulated per size and pool")
    results: dict = {}
    for size in args.sizes:
        clusters = max(1, total // size)
        for name, candidate in policies.items():
            pooled, single, seconds = [], [], 0.0
            for seed, rates in enumerate(pools):
                loads = TraceLoad.partition(rates, size, clusters, seed=(evaluation.seed, seed))
                key = jax.random.fold_in(jax.random.key(evaluation.seed), seed)
                start = time.perf_counter()
                result = jax.block_until_ready(simulate_clusters(model, loads, candidate, key,
                                                                 num_steps=evaluation.minutes))
                seconds = time.perf_counter() - start
                pooled.append(summarize(pool_clusters(result), model)["overall"])
                single += [summarize(cluster(result, r), model)["overall"] for r in range(clusters)]
            results[size, name] = {
                "pooled": {m: float(np.mean([p[m] for p in pooled])) for m in METRICS},
                "single": {m: np.asarray([s[m] for s in single]) for m in METRICS}}
            print(f"N = {size:>7d} x {clusters:4d} clusters  {name:18s} {seconds:7.2f} s per simulated day "
                  f"({clusters * size * evaluation.minutes / seconds / 1e6:.2f} M function-steps/s)", flush=True)
    small, large = args.sizes[0], args.sizes[-1]
    print(f"\nexpected metric at N = {small} (pooled over its clusters) -> at N = {large}; "
          f"change; one N = {small} cluster: mean +- 95% range")
    for name in policies:
        print(f"\n{name}")
        worst = 0.0
        for metric in METRICS:
            a = results[small, name]["pooled"][metric]
            b = results[large, name]["pooled"][metric]
            change = (b - a) / abs(a) if a else float("nan")
            worst = max(worst, abs(change)) if np.isfinite(change) else worst
            one = results[small, name]["single"][metric]
            low, high = np.percentile(one, [2.5, 97.5])
            print(f"  {metric:22s} {a:11.4g} -> {b:11.4g}  ({100 * change:+6.2f}%)   one cluster "
                  f"{one.mean():.4g} [{low:.4g}, {high:.4g}]")
        print(f"  largest change {100 * worst:.2f}% (target: every metric within 5%: "
              f"{'MET' if worst <= 0.05 else 'MISSED'})")


if __name__ == "__main__":
    main()
