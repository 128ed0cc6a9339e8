"""Per-iteration time of the peer libraries on their own games (run in the peers' venv).

    ../peers-venv/bin/python benchmarks/peers/time_peers.py [--budget SECONDS]

Prints one JSON object per line: {"peer", "game", "solver", "step_ms", "exploit_ms", "n"}.
Step and exploitability are timed separately (median over repetitions, each measurement
capped by --budget seconds).  Called by benchmarks/compare_peers.py.
"""

import argparse
import json
import statistics
import sys
import time


def timed(fn, budget, max_reps=50, min_reps=2):
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times), len(times)


def mfglib_cases(budget):
    import mfglib.alg  # noqa: F401  (before mfglib.scoring: circular import in 0.3.0)
    from mfglib.alg import FictitiousPlay, OnlineMirrorDescent
    from mfglib.env import Environment
    from mfglib.scoring import exploitability_score
    import torch

    games = {
        "left_right": {}, "rock_paper_scissors": {}, "susceptible_infected": {},
        "beach_bar": {"T": 10, "n": 100, "bar_loc": 50}, "crowd_motion": {},
        "linear_quadratic": {}, "building_evacuation": {}, "random_linear": {},
    }
    for game, params in games.items():
        env = getattr(Environment, game)(**params)
        for name, alg in [("fictitious_play", FictitiousPlay()), ("mirror_descent", OnlineMirrorDescent())]:
            pi0 = torch.ones((env.T + 1,) + env.S + env.A) / env.n_actions
            box = {"state": alg.init_state(env, pi0)}

            def step():
                box["state"] = alg.step_next_state(box["state"], None, None)

            step_ms, n = timed(step, budget)
            exploit_ms, _ = timed(lambda: exploitability_score(env, box["state"].pi), budget)
            yield {"peer": "mfglib", "game": game, "params": params, "solver": name,
                   "step_ms": step_ms, "exploit_ms": exploit_ms, "n": n}


def openspiel_cases(budget):
    import pyspiel
    from open_spiel.python.mfg.algorithms import fictitious_play, mirror_descent, nash_conv

    from open_spiel.python.mfg.games import linear_quadratic  # noqa: F401  (registers it)

    cases = [("crowd_modelling", "mfg_crowd_modelling", {"size": 10, "horizon": 10}),
             ("crowd_modelling", "mfg_crowd_modelling", {"size": 100, "horizon": 10}),
             ("crowd_modelling_2d", "mfg_crowd_modelling_2d", {"size": 10, "horizon": 10}),
             # as shipped: OpenSpiel's version lags the action terms (docs/peers.md)
             ("linear_quadratic_openspiel", "mean_field_lin_quad", {})]
    for ours, theirs, params in cases:
        game = pyspiel.load_game(theirs, params)
        for name in ("fictitious_play", "mirror_descent"):
            alg = (fictitious_play.FictitiousPlay(game) if name == "fictitious_play"
                   else mirror_descent.MirrorDescent(game, lr=1.0))
            step_ms, n = timed(alg.iteration, budget)
            exploit_ms, _ = timed(lambda: nash_conv.NashConv(game, alg.get_policy()).nash_conv(), budget)
            yield {"peer": "openspiel", "game": ours, "params": params, "solver": name,
                   "step_ms": step_ms, "exploit_ms": exploit_ms, "n": n}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--only", choices=["mfglib", "openspiel"])
    args = parser.parse_args()
    sources = [("mfglib", mfglib_cases), ("openspiel", openspiel_cases)]
    for peer, cases in sources:
        if args.only and peer != args.only:
            continue
        try:
            for record in cases(args.budget):
                print(json.dumps(record), flush=True)
        except ImportError as err:
            print(json.dumps({"peer": peer, "error": f"not installed: {err}"}), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
