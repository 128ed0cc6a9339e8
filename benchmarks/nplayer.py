"""The N-player evaluation: how long the exact and the sampled methods take, and the
serverless game's MFG policy with N = 10 to 10,000 real functions.

    python benchmarks/nplayer.py                 # exact S = 2 at N = 1,000; sampled at N = 10^5
    python benchmarks/nplayer.py --serverless    # also the serverless game (a few minutes)
    python benchmarks/nplayer.py --serverless --small-serverless   # and both bounds on a small one

Not a test: it prints times and numbers (docs/nplayer.md quotes them).
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from mfg import exploitability, games  # noqa: E402
from mfg.nplayer import exact_exploitability, exact_size, marginal_game, sampled_exploitability  # noqa: E402
from solvers import FixedPoint, run  # noqa: E402

LAMBDA = 0.2


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree_util.tree_leaves(out))
    return out, time.perf_counter() - start


def print_table(results, *columns) -> None:
    """A markdown table of sampled results: one row per N, columns (header, Estimate attribute)."""
    print("  | N | " + " | ".join(header for header, _ in columns) + " |")
    print("  |---|" + "---|" * len(columns))
    for r in results:
        cells = [f"{getattr(r, name).mean:.4g} ± {getattr(r, name).half_width:.2g}" for _, name in columns]
        print(f"  | {r.num_players} | " + " | ".join(cells) + " |")


def sis_equilibrium():
    game = marginal_game(games.susceptible_infected(horizon=None))
    result = run(FixedPoint(temperature=LAMBDA, damping=0.2), game, 400, chunk_size=400)
    return game, np.asarray(result.state.policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serverless", action="store_true", help="also evaluate the serverless game's policy")
    parser.add_argument("--episodes", type=int, default=64, help="sampled episodes (SIS)")
    parser.add_argument("--serverless-episodes", type=int, default=32, help="sampled episodes (serverless game)")
    parser.add_argument("--small-serverless", action="store_true",
                        help="with --serverless: both bounds on a small serverless game (S = 72; about 10 minutes)")
    args = parser.parse_args()

    game, policy = sis_equilibrium()
    mf = float(exploitability(game, policy, LAMBDA).regularized)
    print(f"SIS (stationary, discount 0.9), regularized equilibrium (lambda {LAMBDA}): mean-field exploitability {mf:.3g}")
    print(f"exact, {exact_size(game, 1000).describe()}")
    e, seconds = timed(exact_exploitability, game, policy, 1000, LAMBDA)
    print(f"  exact N = 1000: eps_N = {float(e.regularized):.6g} in {seconds:.1f} s (compile included)")
    for sizes in ([100_000],):
        results, seconds = timed(sampled_exploitability, game, policy, sizes, jax.random.key(0),
                                 episodes=args.episodes, temperature=LAMBDA)
        for r in results:
            print(f"  sampled N = {r.num_players}: value {r.value.mean:.5f} +- {r.value.half_width:.2g}, "
                  f"lower bound ({r.deviation}) {r.deviation_gain.mean:.3g} +- {r.deviation_gain.half_width:.2g}, "
                  f"upper bound {r.hindsight_gain.mean:.3g} +- {r.hindsight_gain.half_width:.2g} "
                  f"({args.episodes} episodes, {r.horizon} steps) in {seconds:.1f} s (compile included)")

    if args.serverless:
        game = games.serverless()
        result, seconds = timed(run, FixedPoint(temperature=0.05, damping=0.1), game, 300, chunk_size=100,
                                diagnose=False)
        policy = np.asarray(result.state.policy)
        mf = exploitability(game, policy, 0.05)
        print(f"\nserverless game (S = {game.num_states}, A = {game.num_actions}): fixed point in {seconds:.0f} s, "
              f"mean-field exploitability {float(mf.regularized):.3g} (lambda 0.05)")
        sizes = [10, 100, 1000, 10_000]
        results, seconds = timed(sampled_exploitability, game, policy, sizes, jax.random.key(0),
                                 episodes=args.serverless_episodes, temperature=0.05, hindsight=False)
        print(f"  sampled, {args.serverless_episodes} episodes of {results[0].horizon} steps, all sizes in {seconds:.0f} s "
              f"(one compilation); truncation <= {results[0].truncation_bound:.2g}")
        print_table(results, ("value J_N(pi; pi)", "value"), ("mean return of the N functions", "population_value"),
                    ("lower bound on eps_N (adaptive deviation)", "deviation_gain"))

    if args.serverless and args.small_serverless:
        # Both bounds on a small serverless game (3 containers, 2 CPU steps: S = 72), where
        # the hindsight deviator's S table evaluations per step are affordable.
        sizes = [10, 100, 1000, 10_000]
        game = games.serverless(max_containers=3, max_cpu_steps=2)
        policy = np.asarray(run(FixedPoint(temperature=0.05, damping=0.1), game, 300, chunk_size=100,
                                diagnose=False).state.policy)
        mf = exploitability(game, policy, 0.05)
        results, seconds = timed(sampled_exploitability, game, policy, sizes, jax.random.key(1),
                                 episodes=args.serverless_episodes, temperature=0.05, hindsight=True)
        print(f"\nsmall serverless game (S = {game.num_states}): mean-field exploitability "
              f"{float(mf.regularized):.3g}; sampled with both bounds, all sizes in {seconds:.0f} s")
        print_table(results, ("value J_N(pi; pi)", "value"), ("lower bound (adaptive deviation)", "deviation_gain"),
                    ("upper bound (hindsight)", "hindsight_gain"))


if __name__ == "__main__":
    main()
