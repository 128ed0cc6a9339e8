"""Mean-field transfer and scale of the serverless evaluation (issue 4, acceptance 4).

A run's MFG policy (trained on the tabular game) and two baselines are simulated with
N = 1,000 and N = 100,000 functions drawn from the same synthetic days (one per seed),
on this machine's CPU.  Prints every metric at both sizes, the relative change, and the
wall time of each simulation (compilation excluded: one warm-up day first).

    python benchmarks/serverless_scale.py RUN_DIR [--sizes 1000 100000] [--seeds 2]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments.runner import RunFolder, restore_policy
from experiments.serverless import MFG, build_loads, load_edges
from mfg.autoscalers import ConcurrencyAutoscaler, HorizontalAutoscaler, TabularPolicy
from mfg.evaluation import METRICS, summarize
from mfg.games.serverless import cluster_model_of
from mfg.particles import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    config, game, state, iteration = restore_policy(RunFolder(args.run_dir), with_evaluation=True)
    model = cluster_model_of(game)
    policy = np.asarray(state.policy)
    policy = policy[0] if policy.ndim == 3 else policy
    policies = {MFG: TabularPolicy(policy, load_edges(game), model.max_containers, model.max_cpu_steps),
                "HPA (target 0.7)": HorizontalAutoscaler(0.7, cpu_steps=model.max_cpu_steps),
                "KPA (target 0.7)": ConcurrencyAutoscaler(0.7, cpu_steps=model.max_cpu_steps)}
    peak_load = config.game.params.get("peak_load", 0.5)
    results: dict = {}
    for size in args.sizes:
        evaluation = config.evaluation.model_copy(update={"num_functions": size, "seeds": args.seeds})
        loads = build_loads(model, evaluation, peak_load, log=lambda message: None)
        for name, candidate in policies.items():
            runs, seconds = [], []
            for seed, load in enumerate(loads):
                key = jax.random.fold_in(jax.random.key(evaluation.seed), seed)
                if seed == 0:
                    jax.block_until_ready(simulate(model, load, candidate, key, num_steps=evaluation.minutes))
                start = time.perf_counter()
                result = jax.block_until_ready(simulate(model, load, candidate, key, num_steps=evaluation.minutes))
                seconds.append(time.perf_counter() - start)
                runs.append(summarize(result, model)["overall"])
            results[size, name] = ({m: float(np.mean([r[m] for r in runs])) for m in METRICS}, float(np.mean(seconds)))
            print(f"N = {size:>7d}  {name:18s} {np.mean(seconds):7.2f} s per simulated day "
                  f"({size * evaluation.minutes / np.mean(seconds) / 1e6:.2f} M function-steps/s)", flush=True)
    small, large = args.sizes[0], args.sizes[-1]
    print(f"\npolicy of iteration {iteration} of {args.run_dir}; {args.seeds} seeds, {config.evaluation.minutes} minutes")
    print(f"{'metric':22s}" + "".join(f"{name:>40s}" for name in policies))
    for metric in METRICS:
        cells = []
        for name in policies:
            a, b = results[small, name][0][metric], results[large, name][0][metric]
            change = (b - a) / abs(a) if a else float("nan")
            cells.append(f"{a:11.4g} -> {b:11.4g} ({100 * change:+6.2f}%)")
        print(f"{metric:22s}" + "".join(f"{c:>40s}" for c in cells))


if __name__ == "__main__":
    main()
