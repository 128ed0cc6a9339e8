"""Our exact exploitability against MFAX's on MFAX's own games, in one run.

    python benchmarks/compare_mfax.py [--mfax-python ../mfax-venv310/bin/python]
                                      [--mfax-src ../mfax-src] [--quick] [--json out.json]
    python benchmarks/compare_mfax.py --largest [--json out.json]   # the largest games in memory

Install MFAX first (``bash benchmarks/install_peers.sh`` makes ../mfax-src and
../mfax-venv310).  MFAX has no tabular solver (its algorithms train policy networks), so
the one computation both libraries do exactly is the exploitability of a given policy:
roll the mean field out over the episode, evaluate the policy backwards, and compute the
best response by backward induction (on each common-noise path, for the macroeconomy).
Every tabular solver step here is made of these parts (a fictitious-play step is one
best response and one rollout), so the ratio is the per-iteration ratio of a solver built
on either library's operators.

Per case, side by side: MFAX's call (``benchmarks/peers/time_mfax.py``, jitted whole) and
ours (``mfg.oracles.exploitability``, or ``common_noise_exploitability`` over the same
paths, jitted), both in float32 on the CPU, best of 3 runs after a compiling warm-up, for
the uniform policy on the same game (the bar location and the noise paths MFAX drew).
The exploitability of both is printed as a check.  ratio = MFAX time / ours.

``--largest``: the beach bar and the linear-quadratic game at 10^5, 10^6 and 10^7
states, each library in a process of its own (one call after compiling, its peak
resident memory read by the parent), up to the first size a library does not get
through (killed for memory on this 24 GB machine, or past ``--largest-timeout``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_of  # noqa: E402

from mfg import games  # noqa: E402
from mfg.games.mfax import common_noise_exploitability  # noqa: E402
from mfg.game import uniform_policy  # noqa: E402
from mfg.oracles import exploitability  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOY_GAMMA = 0.99          # discount_factor of the toy games' configs
ECONOMY_GAMMA = 0.95      # and of the macroeconomy's

# (label, MFAX task, its overrides, our game, our params, num_envs, repeats)
CASES = [
    *[(f"beach bar {n}", "beach_bar_1d", {"num_states": n}, "mfax_beach_bar", {"num_states": n}, 1, reps)
      for n, reps in ((11, 50), (101, 20), (1001, 10), (10_001, 3), (100_001, 1))],
    *[(f"linear-quadratic {n}", "linear_quadratic", {"num_states": n}, "mfax_linear_quadratic",
       {"num_states": n}, 1, reps) for n, reps in ((99, 20), (999, 10), (9_999, 3))],
    ("macroeconomy 1000, no noise", "endogenous", {"nu": 0.0}, "mfax_endogenous", {}, 1, 3),
    ("macroeconomy 1000, 4 paths", "endogenous", {}, "mfax_endogenous", {}, 4, 2),
    ("macroeconomy 10^4, no noise", "endogenous", {"nu": 0.0, "num_states": [2000, 5]}, "mfax_endogenous",
     {"wealth_states": 2000}, 1, 1),
]


def time_mfax(python: str, src: str, task: str, overrides: dict, gamma: float, num_envs: int, repeats: int):
    case = json.dumps({"task": task, "overrides": overrides, "gamma": gamma, "num_envs": num_envs,
                       "repeats": repeats})
    env = os.environ | {"PYTHONPATH": src, "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_ENABLE_X64", None)
    try:
        proc = subprocess.run([python, str(ROOT / "benchmarks" / "peers" / "time_mfax.py"), case],
                              capture_output=True, text=True, check=False, timeout=1800, env=env)
    except subprocess.TimeoutExpired:
        return None, "did not finish in 1800 s"
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def time_ours(name: str, params: dict, gamma: float, peer: dict | None, num_envs: int):
    params = dict(params, discount=gamma)
    if peer is not None and "bar_location" in peer:
        params["bar_location"] = peer["bar_location"]
    game = games.make(name, dtype=jnp.float32, **params)
    policy = uniform_policy(game)
    if name == "mfax_endogenous":
        paths = (jnp.asarray(peer["common_noise_paths"], jnp.float32) if peer is not None
                 else jnp.zeros((num_envs, game.horizon), jnp.float32))
        call = jax.jit(lambda g, p: common_noise_exploitability(g, p, paths).unregularized.mean())
    else:
        call = jax.jit(lambda g, p: exploitability(g, p).unregularized)
    seconds = best_of(lambda: call(game, policy))
    return 1e3 * seconds, float(call(game, policy)), game.num_states


LARGEST = [("beach bar", "beach_bar_1d", "mfax_beach_bar", (100_001, 1_000_001, 10_000_001)),
           ("linear-quadratic", "linear_quadratic", "mfax_linear_quadratic", (99_999, 999_999, 9_999_999))]


def _peak_run(command: list[str], env: dict, timeout: float) -> tuple[dict | None, float, str | None]:
    """(the last JSON line ``command`` printed, its peak resident GB, an error) of one child
    process, run under a small wrapper whose only child it is (so RUSAGE_CHILDREN is its)."""
    wrapper = ("import json, resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20\n"
               "last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''\n"
               "err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''\n"
               "print(json.dumps({'rc': p.returncode, 'peak_gb': peak, 'last': last, 'err': err}))\n")
    try:
        proc = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, float("nan"), f"did not finish in {timeout:.0f} s"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        reason = "killed (out of memory)" if out["rc"] in (-9, 137) else (out["err"] or f"exit {out['rc']}")
        return None, out["peak_gb"], reason
    return json.loads(out["last"]), out["peak_gb"], None


def largest(args) -> list[dict]:
    """The largest beach bar and linear-quadratic games each library gets through (``--largest``)."""
    mfax_env = os.environ | {"PYTHONPATH": args.mfax_src, "JAX_PLATFORMS": "cpu"}
    mfax_env.pop("JAX_ENABLE_X64", None)
    ours_env = os.environ | {"JAX_PLATFORMS": "cpu"}
    rows = []
    print(f"{'game':18s} {'S':>10s} | {'MFAX s':>9s} {'peak GB':>8s} | {'ours s':>9s} {'peak GB':>8s}", flush=True)
    for label, task, name, sizes in LARGEST:
        alive = {"mfax": True, "ours": True}
        for n in sizes:
            row = {"game": label, "states": n}
            if alive["mfax"]:
                case = json.dumps({"task": task, "overrides": {"num_states": n}, "gamma": TOY_GAMMA, "repeats": 1})
                out, peak, error = _peak_run([args.mfax_python, str(ROOT / "benchmarks" / "peers" / "time_mfax.py"),
                                              case], mfax_env, args.largest_timeout)
                row |= {"mfax_s": None if out is None else out["ms"] / 1e3, "mfax_peak_gb": peak, "mfax_error": error}
                alive["mfax"] = error is None
            if alive["ours"]:
                out, peak, error = _peak_run([sys.executable, str(Path(__file__).resolve()), "--ours-case", name,
                                              str(n)], ours_env, args.largest_timeout)
                row |= {"ours_s": None if out is None else out["ms"] / 1e3, "ours_peak_gb": peak, "ours_error": error}
                alive["ours"] = error is None

            def cell(who):
                if f"{who}_s" not in row:
                    return f"{'-':>9s} {'-':>8s}"
                if row[f"{who}_error"] is not None:
                    return f"{row[f'{who}_error'][:18]:>18s}"
                return f"{row[f'{who}_s']:>9.3g} {row[f'{who}_peak_gb']:>8.2f}"

            print(f"{label:18s} {n:>10d} | {cell('mfax')} | {cell('ours')}", flush=True)
            rows.append(row)
            if not any(alive.values()):
                break
    return rows


def _ours_case(name: str, n: int) -> None:
    """One jitted exploitability of the uniform policy on our game ``name`` at ``n`` states
    (after a compiling call); prints {"ms", "exploitability"} (``--largest``'s child)."""
    import time
    game = games.make(name, dtype=jnp.float32, num_states=n, discount=TOY_GAMMA)
    call = jax.jit(lambda g, p: exploitability(g, p).unregularized)
    policy = uniform_policy(game)
    value = float(call(game, policy))
    start = time.perf_counter()
    jax.block_until_ready(call(game, policy))
    print(json.dumps({"ms": 1e3 * (time.perf_counter() - start), "exploitability": value}))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--ours-case":
        _ours_case(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mfax-python", default=str(ROOT.parent / "mfax-venv310" / "bin" / "python"))
    parser.add_argument("--mfax-src", default=str(ROOT.parent / "mfax-src"))
    parser.add_argument("--quick", action="store_true", help="skip the cases with 10^4 states or more")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--largest", action="store_true", help="the largest games each library gets through")
    parser.add_argument("--largest-timeout", type=float, default=1200.0, help="--largest: seconds per process")
    args = parser.parse_args()
    if args.largest:
        rows = largest(args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    header = (f"{'game':30s} {'S':>7s} | {'MFAX ms':>10s} {'ours ms':>10s} {'ratio':>8s} | "
              f"{'MFAX expl':>12s} {'ours expl':>12s}")
    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs; MFAX with {args.mfax_python}")
    print(header, flush=True)
    print("-" * len(header), flush=True)
    rows = []
    for label, task, overrides, name, params, num_envs, repeats in CASES:
        size = params.get("num_states", params.get("wealth_states", 200) * 5)
        if args.quick and size >= 10_000:
            continue
        gamma = ECONOMY_GAMMA if task == "endogenous" else TOY_GAMMA
        peer, error = time_mfax(args.mfax_python, args.mfax_src, task, overrides, gamma, num_envs, repeats)
        ours_ms, ours_value, states = time_ours(name, params, gamma, peer, num_envs)
        row = {"game": label, "states": states, "ours_ms": ours_ms, "ours_exploitability": ours_value}
        if peer is None:
            print(f"{label:30s} {states:>7d} | MFAX failed: {error}; ours {ours_ms:.3g} ms", flush=True)
            rows.append(row | {"peer_error": error})
            continue
        row |= {"mfax_ms": peer["ms"], "mfax_exploitability": peer["exploitability"], "ratio": peer["ms"] / ours_ms}
        print(f"{label:30s} {states:>7d} | {peer['ms']:>10.3g} {ours_ms:>10.3g} {row['ratio']:>7.1f}x | "
              f"{peer['exploitability']:>12.6g} {ours_value:>12.6g}", flush=True)
        rows.append(row)
    if rows and all("ratio" in r for r in rows):
        print(f"worst ratio {min(r['ratio'] for r in rows):.1f}x; games with >= 100 states: "
              f"{min(r['ratio'] for r in rows if r['states'] >= 100):.1f}x (target >= 10x; >= 2x below)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
