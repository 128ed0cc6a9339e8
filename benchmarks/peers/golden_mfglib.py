"""Golden exploitability values from MFGLib 0.3.0, run in the peers' virtual environment.

    ../peers-venv/bin/python benchmarks/peers/golden_mfglib.py tests/data/golden_mfglib.json

Runs FictitiousPlay(alpha=0) and OnlineMirrorDescent(alpha=1) from the uniform policy on
each reference game (parameters as in shared/reference/peers.md), in float64, and stores
the exploitability after every iteration 0..100 with the exact parameters used.
"""
import json
import sys
import time

import torch

torch.set_default_dtype(torch.float64)

import mfglib.alg  # noqa: E402  (must precede mfglib.scoring: circular import in 0.3.0)
from mfglib.alg import FictitiousPlay, OnlineMirrorDescent, PriorDescent  # noqa: E402
from mfglib.env import Environment  # noqa: E402

GAMES = {
    "left_right": {},
    "rock_paper_scissors": {},
    "susceptible_infected": {},
    "beach_bar": {"T": 10, "n": 100, "bar_loc": 50, "p_still": 0.5},
    "crowd_motion": {},
    "linear_quadratic": {},
    "building_evacuation": {},
    "conservative_treasure_hunting": {},
    "random_linear": {},
}
SOLVERS = {
    "fictitious_play": lambda: FictitiousPlay(alpha=0.0),
    "mirror_descent": lambda: OnlineMirrorDescent(alpha=1.0),
    "fixed_point": lambda: PriorDescent(eta=1.0),
}
ITERS = 100


def crowd_motion_bar_path(env):
    """The bar location at each time step, read back from MFGLib's reward tables."""
    path = []
    for c1 in env.reward_fn.c1s:
        flat = int(torch.argmax(c1[..., 0]))
        path.append([flat // c1.shape[1], flat % c1.shape[1]])
    return path


def main(out, only=None):
    records = []
    for game, params in GAMES.items():
        if only and game not in only:
            continue
        for solver_name, make in SOLVERS.items():
            env = getattr(Environment, game)(**params)
            extra = {}
            if game == "crowd_motion":
                extra["bar_path"] = crowd_motion_bar_path(env)
            if game == "random_linear":  # torch-RNG tensors, so the port is the same game
                extra["tensors"] = {"r1": env.reward_fn.r1.tolist(), "r2": env.reward_fn.r2.tolist(),
                                    "p1": env.transition_fn.p1.tolist(), "p2": env.transition_fn.p2.tolist()}
            t0 = time.time()
            _, expls, _ = make().solve(env, max_iter=ITERS, atol=None, rtol=None)
            print(f"{game:22s} {solver_name:16s} expl[0,1,10,100] = "
                  f"{expls[0]:.6g} {expls[1]:.6g} {expls[10]:.6g} {expls[100]:.6g} "
                  f"({time.time() - t0:.1f}s)", flush=True)
            records.append({"peer": "mfglib==0.3.0", "game": game, "params": params,
                            "derived": extra, "solver": solver_name,
                            "exploitability": [float(e) for e in expls]})
    with open(out, "w") as f:
        json.dump({"dtype": "float64", "records": records}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
