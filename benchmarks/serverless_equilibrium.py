"""The tabular serverless game (default: 960 states) solved by exact NAC and by the damped
fixed point: final regularized exploitability of each, the sup-norm distance between their
policies, and the wall time.  Issue 4, acceptance 2.

    python benchmarks/serverless_equilibrium.py [--temperature 0.05] [--iterations 1000]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from mfg.games.serverless import serverless  # noqa: E402
from solvers import FixedPoint, NaturalActorCritic, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--reward-form", default="template", choices=["template", "cost"])
    parser.add_argument("--price", type=float, default=0.0)
    args = parser.parse_args()
    game = serverless(reward_form=args.reward_form, price=args.price)
    solvers = {
        "nac (exact critic)": NaturalActorCritic(learning_rate=0.5, temperature=args.temperature, mean_field_rate=0.2),
        "fixed point (damping 0.1)": FixedPoint(temperature=args.temperature, damping=0.1),
    }
    policies = {}
    print(f"serverless game: S = {game.num_states}, A = {game.num_actions}, lambda = {args.temperature}")
    for name, solver in solvers.items():
        start = time.perf_counter()
        result = run(solver, game, args.iterations, chunk_size=100, stop_exploitability=1e-6, progress=False)
        seconds = time.perf_counter() - start
        exploitability = np.asarray(result.metrics["exploitability"])
        policies[name] = np.asarray(result.state.policy)
        print(f"{name:28s} iterations {result.iterations:5d}  exploitability {exploitability[-1]:.3e}  "
              f"mean-field residual {np.asarray(result.metrics['mean_field_residual'])[-1]:.3e}  {seconds:.1f} s")
    a, b = policies.values()
    print(f"policy sup-norm difference: {np.abs(a - b).max():.3e}")


if __name__ == "__main__":
    main()
