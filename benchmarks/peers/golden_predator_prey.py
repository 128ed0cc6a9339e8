"""Golden values from OpenSpiel 2.0.2's predator-prey MFG (run in the peers' venv).

    ../peers-venv/bin/python benchmarks/peers/golden_predator_prey.py tests/data/golden_predator_prey.json

Default three-population setting (size 5, horizon 10, square geometry, noise 0.8) and a
torus variant: NashConv of the uniform policy, and NashConv after 1..10 iterations of
OpenSpiel's fictitious play.
"""

import json
import sys

import pyspiel
from open_spiel.python import policy as policy_std
from open_spiel.python.mfg.algorithms import fictitious_play, nash_conv
from open_spiel.python.mfg.games import predator_prey  # noqa: F401  (registers the game)

sys.setrecursionlimit(100_000)


def main(out):
    records = []
    for name, extra in {"default": {}, "torus": {"geometry": predator_prey.Geometry.TORUS}}.items():
        game = pyspiel.load_game("python_mfg_predator_prey", extra)
        uniform = nash_conv.NashConv(game, policy_std.UniformRandomPolicy(game)).nash_conv()
        fp = fictitious_play.FictitiousPlay(game)
        values = []
        for _ in range(10):
            fp.iteration()
            values.append(nash_conv.NashConv(game, fp.get_policy()).nash_conv())
        print(name, uniform, values, flush=True)
        records.append({"peer": "open_spiel==2.0.2", "setting": name,
                        "geometry": "torus" if extra else "square", "size": 5, "horizon": 10,
                        "uniform_nash_conv": uniform, "fictitious_play_nash_conv": values})
    with open(out, "w") as f:
        json.dump({"records": records}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
