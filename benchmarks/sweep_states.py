"""State-count sweep on structured games: throughput and peak memory, 10^2 .. 10^7 states.

    python benchmarks/sweep_states.py [--max-states 10000000] [--kernels shift,sparse,pull]

For each (game, S, kernel) a fresh process (so peak memory is its own) measures, in
float32 on the CPU, the per-call time of

  push   the population flow of the uniform policy (T epochs of the push-forward),
  backup the optimal-Q backward induction (T epochs of the Bellman backup),
  omd    one whole online-mirror-descent iteration (flow + policy evaluation + softmax),

and reports state-action-steps per second: S * A * T / time, i.e. one (s, a) pair moved
through one epoch (once per sweep; an OMD iteration makes two sweeps plus a softmax, and
is still counted S * A * T), with the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def measure(game_name: str, states: int, kernel: str, horizon: int) -> dict:
    import jax

    from mfg import games, uniform_policy
    from mfg.oracles import mean_field_flow, optimal_q_values
    from solvers import MirrorDescent, run
    from timing import best_of

    if game_name == "crowd_modelling":
        game = games.crowd_modelling(size=states, horizon=horizon, kernel=kernel)
    elif game_name == "crowd_modelling_2d":
        side = int(round(states ** 0.5))
        game = games.crowd_modelling_2d(size=side, horizon=horizon, kernel=kernel)
    elif game_name == "garnet":
        game = games.garnet(num_states=states, horizon=horizon, kernel=kernel)
    else:
        raise SystemExit(f"unknown game {game_name}")
    policy = uniform_policy(game)
    flow_fn = jax.jit(mean_field_flow)
    backup_fn = jax.jit(lambda g, f: optimal_q_values(g, f, 0.0))

    flow = flow_fn(game, policy)
    push = best_of(lambda: flow_fn(game, policy))
    backup = best_of(lambda: backup_fn(game, flow))
    omd = best_of(lambda: run(MirrorDescent(), game, 2, chunk_size=2, diagnose=False).state.policy) / 2
    work = game.num_states * game.num_actions * game.horizon
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"game": game_name, "states": game.num_states, "actions": game.num_actions,
            "horizon": game.horizon, "kernel": kernel,
            "push_ms": 1e3 * push, "backup_ms": 1e3 * backup, "omd_ms": 1e3 * omd,
            "push_Msas": work / push / 1e6, "backup_Msas": work / backup / 1e6,
            "omd_Msas": work / omd / 1e6, "peak_rss_mb": peak_mb,
            "bytes_per_state": peak_mb * 2**20 / game.num_states}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-states", type=int, default=10**7)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--kernels", default="shift,sparse,pull")
    parser.add_argument("--games", default="crowd_modelling,crowd_modelling_2d,garnet")
    parser.add_argument("--one", nargs=3, metavar=("GAME", "STATES", "KERNEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.one[2], args.horizon)))
        return
    print(f"{'game':20s} {'kernel':6s} {'S':>9s} {'push':>9s} {'backup':>9s} {'omd iter':>9s}  "
          f"{'push':>7s} {'backup':>7s} {'omd':>7s}  {'peak RSS':>9s}")
    print(f"{'':20s} {'':6s} {'':>9s} {'ms':>9s} {'ms':>9s} {'ms':>9s}  "
          f"{'M sa-steps/s':>23s}  {'MB':>9s}")
    for game in args.games.split(","):
        for kernel in args.kernels.split(","):
            if game == "garnet" and kernel == "shift":
                continue  # Garnet has no grid: it uses successor tables
            states = 100
            while states <= args.max_states:
                proc = subprocess.run([sys.executable, __file__, "--one", game, str(states), kernel,
                                       "--horizon", str(args.horizon)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{game:20s} {kernel:6s} {states:9d} failed: {proc.stderr.strip().splitlines()[-1:]}")
                    break
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{game:20s} {kernel:6s} {r['states']:9d} {r['push_ms']:9.2f} {r['backup_ms']:9.2f} "
                      f"{r['omd_ms']:9.2f}  {r['push_Msas']:7.0f} {r['backup_Msas']:7.0f} "
                      f"{r['omd_Msas']:7.0f}  {r['peak_rss_mb']:9.0f}", flush=True)
                states *= 10


if __name__ == "__main__":
    main()
