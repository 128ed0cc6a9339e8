"""Golden values from OpenSpiel 2.0.2's 2D crowd modelling (run in the peers' venv).

    ../peers-venv/bin/python benchmarks/peers/golden_openspiel.py tests/data/golden_openspiel.json

For the 10x10 default (started from two cells) and OpenSpiel's named maze and four-rooms settings (all with
``only_distribution_reward=True``, where OpenSpiel's lagged move penalty plays no part),
stores the settings (walls as (x, y) pairs) and the exploitability (nash_conv) of the
uniform policy over legal actions.
"""

import json
import sys

import pyspiel
from open_spiel.python import policy as policy_std
from open_spiel.python.mfg.algorithms import nash_conv
from open_spiel.python.mfg.games import crowd_modelling_2d  # noqa: F401  (settings)
from open_spiel.python.mfg.games import factory

sys.setrecursionlimit(100_000)


def pairs(text):
    text = text.strip()[1:-1]
    return [[int(v) for v in item.split("|")] for item in text.split(";")] if text else []


def floats(text):
    text = text.strip()[1:-1]
    return [float(v) for v in text.split(";")] if text else []


def main(out):
    records = []
    settings = {
        # the uniform policy is an equilibrium from a uniform start: start from two cells
        "crowd_modelling_2d_10x10": {"only_distribution_reward": True,
                                     "initial_distribution": "[1|1;5|2]",
                                     "initial_distribution_value": "[0.5;0.5]"},
        "crowd_modelling_2d_four_rooms": {},
        "crowd_modelling_2d_maze": {},
    }
    for name, extra in settings.items():
        params = {**factory.GAME_SETTINGS[name], **extra}
        game = pyspiel.load_game("mfg_crowd_modelling_2d", params)
        full = game.get_parameters()
        value = nash_conv.NashConv(game, policy_std.UniformRandomPolicy(game)).nash_conv()
        print(name, value, flush=True)
        records.append({
            "peer": "open_spiel==2.0.2", "setting": name,
            "size": full["size"], "horizon": full["horizon"],
            "only_distribution_reward": full["only_distribution_reward"],
            "forbidden_states": pairs(full["forbidden_states"]),
            "initial_distribution": [[xy, v] for xy, v in zip(pairs(full["initial_distribution"]),
                                                              floats(full["initial_distribution_value"]))],
            "uniform_legal_policy_nash_conv": value,
        })
    with open(out, "w") as f:
        json.dump({"records": records}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
