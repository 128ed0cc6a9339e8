"""Our solvers against Bench-MFG (the fastest JAX peer) on its own games, in one run.

    python benchmarks/compare_benchmfg.py [--benchmfg-python ../benchmfg-venv/bin/python]
                                          [--quick] [--json out.json]

Install Bench-MFG first (``bash benchmarks/install_peers.sh`` makes ../benchmfg-venv).
For each case it prints, side by side:

* Bench-MFG's step: its own loop body (``benchmarks/peers/time_benchmfg.py``);
* ours, the same iteration: ``MirrorDescent`` / ``PolicyIteration`` doing what Bench-MFG's
  step does (H - 2 truncated evaluation sweeps, 20 warm-started push-forward steps: the
  same iterates, to 1e-13, ``tests/test_golden_benchmfg.py``);
* ours, exact: the same algorithm with exact evaluation and the stationary mean field
  solved to tolerance, warm-started (this library's default way to iterate);

the per-iteration time (best of 3 runs of n steps, after a compiling warm-up; ours in a
jitted scan as the driver runs it) and the time to exploitability <= target, i.e. the
iterations to reach it times the per-iteration time.  Equal accuracy is measured with
one yardstick for all three: Bench-MFG's exploitability (``benchmfg_exploitability``:
50 push-forward steps from the iterate's mean field, H - 1 truncated sweeps), evaluated
on every iterate outside the timing.  Everything in float32 on the CPU (JAX's default,
Bench-MFG's too).  ratio = Bench-MFG time / ours.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_of  # noqa: E402

from mfg import games  # noqa: E402
from mfg.games.benchmfg import benchmfg_exploitability  # noqa: E402
from mfg.oracles import MeanFieldSolve  # noqa: E402
from solvers import MirrorDescent, PolicyIteration  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HORIZON = 100
BENCHMFG_STEP = MeanFieldSolve(max_iterations=20, fixed_steps=True, warm_start=True, renormalize=True)
EXACT = MeanFieldSolve(warm_start=True)
# MF-Garnet and kinetic congestion have population maps that are discontinuous in mu
# (quirk B5): no solve meets the default
# tolerance there; damped to a tolerance it reaches (docs/solvers.md).
EXACT_ROUNDED = MeanFieldSolve(warm_start=True, damping=0.5, tol=2e-3, max_iterations=2000)

# (label, our game, its params, Bench-MFG overrides, algorithm, hyper, iterations)
OMD = {"learning_rate": 0.01, "temperature": 0.2}   # converges on Lasry-Lions (0.02 does not, exactly solved)
CASES = [
    ("SIS", "benchmfg_sis", {}, ["environment=sis_epidemic"], "omd", {"learning_rate": 0.1, "temperature": 0.2}, 200),
    ("contraction", "benchmfg_contraction", {}, ["environment=contraction_game"], "omd", OMD, 200),
    ("kinetic congestion 5x5", "benchmfg_kinetic_congestion", {}, ["environment=kinetic_congestion"], "omd",
     {"learning_rate": 0.1, "temperature": 0.2}, 200),
    ("four rooms 11x11", "benchmfg_four_rooms", {}, ["environment=four_rooms_obstacles"], "omd", OMD, 200),
    ("MF-Garnet 10", "benchmfg_mf_garnet", {"num_states": 10}, ["environment=mf_garnet", "environment.num_states=10"],
     "omd", {"learning_rate": 0.1, "temperature": 0.2}, 200),
    ("MF-Garnet 100", "benchmfg_mf_garnet", {"num_states": 100},
     ["environment=mf_garnet", "environment.num_states=100"], "omd", {"learning_rate": 0.1, "temperature": 0.2}, 20),
] + [
    (f"Lasry-Lions {n}", "benchmfg_lasry_lions", {"num_states": n},
     ["environment=lasry_lions_chain", f"environment.num_states={n}"], "omd", OMD, iters)
    for n, iters in ((10, 300), (100, 300), (1000, 300), (10_000, 100), (100_000, 20))
] + [
    ("multiple equilibria PI", "benchmfg_multiple_equilibria", {}, ["environment=multiple_equilibria"], "pi", {}, 30),
]


def our_solver(algorithm, hyper, exact: bool, game_name: str = ""):
    rounded = "garnet" in game_name or "kinetic" in game_name       # kernels rounded on noise atoms
    solve = (EXACT_ROUNDED if rounded else EXACT) if exact else BENCHMFG_STEP
    if algorithm == "omd":
        return MirrorDescent(learning_rate=hyper["learning_rate"] / hyper["temperature"],
                             evaluation_sweeps=0 if exact else HORIZON - 2, mean_field_solve=solve)
    return PolicyIteration(evaluation_sweeps=0 if exact else HORIZON - 2, mean_field_solve=solve)


@functools.partial(jax.jit, static_argnames="n")
def _steps(solver, game, state, n):
    return jax.lax.fori_loop(0, n, lambda _, s: solver.step(game, s), state)


@functools.partial(jax.jit, static_argnames="n")
def _trajectory(solver, game, state, n):
    def body(s, _):
        s = solver.step(game, s)
        return s, (s.policy, s.mean_field.sum(-1))
    return jax.lax.scan(body, state, None, length=n)[1]


@jax.jit
def _yardstick(game, policies, mean_fields):
    return jax.lax.map(lambda pm: benchmfg_exploitability(game, pm[0], pm[1], HORIZON), (policies, mean_fields))


def time_ours(game, solver, n: int) -> tuple[float, list[float]]:
    state = solver.init(game)
    step_ms = 1e3 * best_of(lambda: _steps(solver, game, state, n)) / n
    policies, mean_fields = _trajectory(solver, game, state, n)
    first = benchmfg_exploitability(game, state.policy, state.mean_field.sum(-1), HORIZON)
    values = [float(first)] + [float(v) for v in _yardstick(game, policies, mean_fields)]
    return step_ms, values


def time_benchmfg(python: str, overrides, algorithm, hyper, n):
    case = json.dumps({"overrides": overrides, "algorithm": algorithm, "hyper": hyper, "iterations": n})
    try:
        proc = subprocess.run([python, str(ROOT / "benchmarks" / "peers" / "time_benchmfg.py"), case],
                              capture_output=True, text=True, check=False, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "did not finish in 900 s"
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def to_target(step_ms: float, values: list[float], target: float):
    hits = [k for k, v in enumerate(values) if v <= target]
    return (hits[0], hits[0] * step_ms) if hits else (None, None)


def fmt_ms(x):
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmfg-python", default=str(ROOT.parent / "benchmfg-venv" / "bin" / "python"))
    parser.add_argument("--target", type=float, default=1e-3)
    parser.add_argument("--quick", action="store_true", help="skip the 10^4 and 10^5-state cases")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    header = (f"{'game':26s} {'alg':4s} | {'step ms: Bench-MFG':>18s} {'ours same':>10s} {'ratio':>7s} "
              f"{'ours exact':>10s} {'ratio':>7s} | {'to ' + format(args.target, 'g') + ' ms: B-MFG':>16s} "
              f"{'same':>8s} {'exact':>8s} {'best ratio':>10s}")
    print(header, flush=True)
    print("-" * len(header), flush=True)
    for label, name, params, overrides, algorithm, hyper, n in CASES:
        if args.quick and params.get("num_states", 0) >= 10_000:
            continue
        game = games.make(name, dtype=jnp.float32, **params)
        same_ms, same_values = time_ours(game, our_solver(algorithm, hyper, False, name), n)
        exact_ms, exact_values = time_ours(game, our_solver(algorithm, hyper, True, name), n)
        peer, error = time_benchmfg(args.benchmfg_python, overrides, algorithm, hyper, n)
        row = {"game": label, "states": game.num_states, "algorithm": algorithm, "hyper": hyper, "iterations": n,
               "ours_same_step_ms": same_ms, "ours_exact_step_ms": exact_ms,
               "ours_same_final": same_values[-1], "ours_exact_final": exact_values[-1]}
        k_same, t_same = to_target(same_ms, same_values, args.target)
        k_exact, t_exact = to_target(exact_ms, exact_values, args.target)
        row |= {"ours_same_iterations_to_target": k_same, "ours_exact_iterations_to_target": k_exact}
        if peer is None:
            print(f"{label:26s} {algorithm:4s} | Bench-MFG failed: {error}", flush=True)
            row["peer_error"] = error
            rows.append(row)
            continue
        k_peer, t_peer = to_target(peer["step_ms"], peer["exploitability"], args.target)
        row |= {"peer_step_ms": peer["step_ms"], "peer_final": peer["exploitability"][-1],
                "peer_iterations_to_target": k_peer}
        best = min([t for t in (t_same, t_exact) if t is not None], default=None)
        ratio = f"{t_peer / best:.1f}x" if (t_peer is not None and best) else "-"
        print(f"{label:26s} {algorithm:4s} | {fmt_ms(peer['step_ms']):>18s} {fmt_ms(same_ms):>10s} "
              f"{peer['step_ms'] / same_ms:>6.1f}x {fmt_ms(exact_ms):>10s} {peer['step_ms'] / exact_ms:>6.1f}x | "
              f"{fmt_ms(t_peer):>16s} {fmt_ms(t_same):>8s} {fmt_ms(t_exact):>8s} {ratio:>10s}"
              + ("" if k_peer is not None else f"   (Bench-MFG not within {n} iterations: "
                                               f"{peer['exploitability'][-1]:.2g})"), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
