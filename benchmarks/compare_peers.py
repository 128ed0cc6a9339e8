"""Our solvers against the peer libraries, on the peers' own games, in one run.

    python benchmarks/compare_peers.py [--peers-python ../peers-venv/bin/python] [--budget 1]
                                       [--jax-peers [--quick]]

Install the peers first with ``bash benchmarks/install_peers.sh``.  ``--jax-peers`` adds,
in the same run, the JAX peers' tables: Bench-MFG (``compare_benchmfg.py``) and MFAX
(``compare_mfax.py``).  For every shared
(game, solver) pair it prints the per-iteration time of the solver step and of one
exploitability evaluation, ours and the peer's, and their ratio (peer / ours).

How we time ours: a jitted ``lax.scan`` of n solver steps (the way the driver runs them),
after one warm-up call that compiles it; step = wall time / n.  Exploitability: a jitted
loop of n evaluations of ``exploitability(game, policy)`` (mean field of the policy
included, as in the peers' scoring functions) / n.  Best of 3 repetitions each.
The peers are timed per Python call (their natural unit).  All on the CPU; ours in
float32 (JAX's default; MFGLib's torch default is float32 too, OpenSpiel uses Python floats).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from mfg import exploitability, games
from timing import best_of
from solvers import FictitiousPlay, MirrorDescent, run

ROOT = Path(__file__).resolve().parents[1]
SOLVERS = {"fictitious_play": FictitiousPlay, "mirror_descent": MirrorDescent}


def our_game(record):
    params = dict(record["params"])
    if record["peer"] == "mfglib" and "T" in params:
        params["horizon"] = params.pop("T") + 1
    return games.make(record["game"], **params)


@functools.partial(jax.jit, static_argnames="n")
def _repeated_exploitability(game, policy, n):
    # each evaluation reads the previous one's result, so XLA cannot hoist it
    def body(_, carry):
        return exploitability(game, policy + 1e-30 * carry).unregularized
    return jax.lax.fori_loop(0, n, body, jnp.zeros((), policy.dtype))


def time_ours(game, solver, budget: float) -> tuple[float, float, int]:
    """(step_ms, exploitability_ms, n) measured as described in the module docstring."""
    n = 10
    while True:  # grow n until a call takes a measurable time (or the budget says stop)
        step = best_of(lambda: run(solver, game, n, chunk_size=n, diagnose=False).state.policy)
        if step > 0.05 or n >= 10_000 or step * 10 > budget:
            break
        n *= 10
    policy = run(solver, game, 1, diagnose=False).state.policy
    expl = best_of(lambda: _repeated_exploitability(game, policy, n))
    return 1e3 * step / n, 1e3 * expl / n, n


def peer_records(python: str, budget: float):
    script = ROOT / "benchmarks" / "peers" / "time_peers.py"
    proc = subprocess.run([python, str(script), "--budget", str(budget)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"peer timing failed:\n{proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", default=str(ROOT.parent / "peers-venv" / "bin" / "python"))
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per peer measurement")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--jax-peers", action="store_true",
                        help="then, in the same run, Bench-MFG (compare_benchmfg.py) and MFAX (compare_mfax.py)")
    parser.add_argument("--quick", action="store_true", help="with --jax-peers: skip their 10^4+ state cases")
    args = parser.parse_args()
    if not os.path.exists(args.peers_python):
        sys.exit(f"no peer environment at {args.peers_python}: run bash benchmarks/install_peers.sh")

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; "
          f"peers timed with {args.peers_python}", flush=True)
    rows = []
    header = (f"{'peer':9s} {'game':22s} {'S':>5s} {'solver':16s} "
              f"{'peer step':>10s} {'ours step':>10s} {'ratio':>8s}  "
              f"{'peer expl':>10s} {'ours expl':>10s} {'ratio':>8s}")
    print(header)
    print("-" * len(header))
    for rec in peer_records(args.peers_python, args.budget):
        if "error" in rec:
            print(f"{rec['peer']}: {rec['error']}")
            continue
        game = our_game(rec)
        step, expl, n = time_ours(game, SOLVERS[rec["solver"]](), args.budget)
        row = {**rec, "states": game.num_states, "ours_step_ms": step, "ours_exploit_ms": expl,
               "ours_n": n, "step_ratio": rec["step_ms"] / step,
               "exploit_ratio": rec["exploit_ms"] / max(expl, 1e-9)}
        rows.append(row)
        print(f"{rec['peer']:9s} {rec['game']:22s} {game.num_states:5d} {rec['solver']:16s} "
              f"{rec['step_ms']:8.3f}ms {step:8.4f}ms {row['step_ratio']:7.0f}x  "
              f"{rec['exploit_ms']:8.3f}ms {expl:8.4f}ms {row['exploit_ratio']:7.0f}x", flush=True)
    big = [r for r in rows if r["states"] >= 100]
    tiny = [r for r in rows if r["states"] < 100]
    for label, group, target in [("games with >= 100 states", big, 100), ("tiny games", tiny, 10)]:
        if group:
            worst = min(min(r["step_ratio"], r["exploit_ratio"]) for r in group)
            print(f"{label}: worst ratio {worst:.0f}x (target >= {target}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.jax_peers:
        # The JAX peers' tables, one after the other in this run (their own scripts, so
        # that each can also run alone); each prints its worst ratio against its target.
        for script in ("compare_benchmfg.py", "compare_mfax.py"):
            print(f"\n== {script} ==", flush=True)
            subprocess.run([sys.executable, str(Path(__file__).resolve().parent / script)]
                           + (["--quick"] if args.quick else []), check=False)


if __name__ == "__main__":
    main()
