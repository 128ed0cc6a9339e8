"""Online (sampled) NAC throughput: agent-steps per second against the number of agents N.

    python benchmarks/nac_throughput.py [--agents 1000,10000,100000,1000000] [--td-steps 10]

One NAC iteration with the sampled critic moves N agents K steps (TD update, actor step,
mean-field histogram); an agent-step is one agent's transition with its TD update.  For
each N and feature map (one-hot, and RBF state features: compressed linear) it times whole
iterations (diagnostics off, float32, CPU) on the stationary crowd-modelling game with
100 states and prints agent-steps/s and ms per iteration.  Per-agent cost is flat once N
fills the machine: ms/iteration then grows linearly in N.
"""

from __future__ import annotations

import argparse
import json

import jax

from mfg import features, games
from solvers import NaturalActorCritic, run
from timing import best_of


def measure(num_agents: int, td_steps: int, feature_kind: str, states: int) -> dict:
    game = games.crowd_modelling(size=states, horizon=None)
    phi = features.one_hot(game) if feature_kind == "one_hot" else features.rbf(game, 10)
    solver = NaturalActorCritic(features=phi, learning_rate=0.01, critic="sampled", num_agents=num_agents,
                                td_steps=td_steps, exact_diagnostics=False)
    state = solver.init(game, key=jax.random.key(0))
    # Enough iterations per call that one call moves >= 2e7 agent-steps (timer noise).
    iterations = max(1, int(2e7 // (num_agents * td_steps)))
    seconds = best_of(lambda: run(solver, game, iterations, state=state, diagnose=False,
                                  chunk_size=iterations).state)
    return {
        "agents": num_agents, "td_steps": td_steps, "features": feature_kind, "states": states,
        "num_features": phi.num_features, "ms_per_iteration": 1e3 * seconds / iterations,
        "agent_steps_per_s": num_agents * td_steps * iterations / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default="1000,10000,100000,1000000")
    parser.add_argument("--td-steps", type=int, default=10)
    parser.add_argument("--states", type=int, default=100)
    parser.add_argument("--features", default="one_hot,rbf")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = []
    print(f"{'features':>9} {'N':>9} {'ms/iter':>9} {'M agent-steps/s':>16}")
    for kind in args.features.split(","):
        for n in (int(x) for x in args.agents.split(",")):
            row = measure(n, args.td_steps, kind, args.states)
            rows.append(row)
            print(f"{kind:>9} {n:>9} {row['ms_per_iteration']:>9.2f} {row['agent_steps_per_s'] / 1e6:>16.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
