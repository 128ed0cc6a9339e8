"""Why NAC drifted back up on the congested minute game, and the fix (issue 16, item 7).

    python benchmarks/serverless_convergence.py [--capacity 1.4] [--iterations 1200]

The cost-form minute game (``mfg.serverless.game.serverless(reward_form="cost",
price=0.05)``, 960 states) at capacity 1.4 cores per function, exact NAC with the
experiments' settings (eta = 0.5, lambda = 0.05, beta = 0.2), for m = 1 (Algorithm 1:
one push-forward of the population per iteration), 10 and 50 population steps per
iteration (``NaturalActorCritic(population_steps=m)``), and the damped fixed point
(damping 0.1) as the reference equilibrium.  Every ``--every`` iterations: the
regularized exploitability of the policy (at the mean field it induces), the mean-field
residual (the carried mean field against the induced one, L1) and the policy's sup-norm
distance to the fixed point's.  Writes benchmarks/results_serverless_convergence.json
and docs/img/nac_slow_mixing.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from experiments.files import atomic_write  # noqa: E402
from mfg.oracles import exploitability, mean_field_residual  # noqa: E402
from mfg.serverless.game import serverless  # noqa: E402
from solvers import FixedPoint, NaturalActorCritic, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=float, default=1.4)
    parser.add_argument("--iterations", type=int, default=1200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("results_serverless_convergence.json"))
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "nac_slow_mixing.png")
    args = parser.parse_args(argv)
    lam = 0.05
    game = serverless(reward_form="cost", price=0.05, capacity=args.capacity)
    gap = jax.jit(lambda p: exploitability(game, p, lam).regularized)
    reference = run(FixedPoint(temperature=lam, damping=0.1), game, 400, diagnose=False).state.policy
    print(f"serverless cost game, capacity {args.capacity}: S = {game.num_states}; fixed point exploitability "
          f"{float(gap(reference)):.1e}", flush=True)
    results = {"capacity": args.capacity, "fixed_point_exploitability": float(gap(reference)), "runs": {}}
    for m in args.steps:
        solver = NaturalActorCritic(learning_rate=0.5, temperature=lam, mean_field_rate=0.2, population_steps=m)
        state, series, start = None, [], time.perf_counter()
        for done in range(args.every, args.iterations + 1, args.every):
            result = run(solver, game, args.every, state=state, diagnose=False) if state is not None else \
                run(solver, game, args.every, diagnose=False)
            state = result.state
            series.append({"iteration": done, "exploitability": float(gap(state.policy)),
                           "residual": float(mean_field_residual(game, state.policy, state.mean_field)),
                           "distance": float(jnp.abs(state.policy - reference).max())})
        seconds = time.perf_counter() - start
        results["runs"][str(m)] = {"series": series, "seconds": seconds}
        picks = [s for s in series if s["iteration"] in (100, 200, 500, 1000, args.iterations)]
        print(f"m = {m:>2}: " + ", ".join(f"{s['iteration']}: {s['exploitability']:.1e} (residual {s['residual']:.0e}, "
                                           f"distance {s['distance']:.0e})" for s in picks) + f"  [{seconds:.0f} s]",
              flush=True)
    atomic_write(args.results, json.dumps(results, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for (m, run_), marker in zip(results["runs"].items(), "os^v"):
        it = [s["iteration"] for s in run_["series"]]
        axes[0].semilogy(it, [max(s["exploitability"], 1e-16) for s in run_["series"]], marker=marker, markevery=6,
                         label=f"m = {m}")
        axes[1].semilogy(it, [s["residual"] for s in run_["series"]], marker=marker, markevery=6, label=f"m = {m}")
    axes[0].set(xlabel="NAC iteration", ylabel="regularized exploitability", title=f"capacity {args.capacity}")
    axes[1].set(xlabel="NAC iteration", ylabel="mean-field residual (L1)", title="carried vs induced mean field")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(title="push-forwards per iteration", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.results} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
