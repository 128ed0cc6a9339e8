"""Our exact oracles reproduce MFAX's exploitability on its own environments.

Golden values: tests/data/golden_mfax.json, written by ``benchmarks/peers/golden_mfax.py``
with MFAX (CWibault/mfax, source copy, float64): MFAX's exploitability, policy return
and best-response return (mu_0-weighted, discount 0.99, 30 decisions) of the uniform
policy and three random state-dependent policies, on its push-forward linear-quadratic
and beach-bar environments at their defaults (no common noise), the beach bar at the
bar locations MFAX drew.  MFAX has no tabular algorithm in common with this library, so
the goldens are of fixed policies; its mean-field rollout is compared too (the last
epoch's distribution).
"""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from mfg import games
from mfg.oracles import exploitability, mean_field_flow

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_mfax.json").read_text())
GAMES = {"linear_quadratic": "mfax_linear_quadratic", "beach_bar_1d": "mfax_beach_bar"}


def policy_table(name: str, num_states: int, num_actions: int) -> np.ndarray:
    if name == "uniform":
        return np.full((num_states, num_actions), 1.0 / num_actions)
    seed = int(name.removeprefix("dirichlet_seed"))
    return np.random.default_rng(seed).dirichlet(np.ones(num_actions), size=num_states)


def case_id(record) -> str:
    return f"{record['task']}-{record['policy']}-key{record['key']}"


@pytest.mark.parametrize("record", GOLDEN["records"], ids=case_id)
def test_mfax_exploitability_of_a_fixed_policy_is_reproduced(record):
    params = {"discount": record["gamma"], "horizon": record["horizon"]}
    if "bar_location" in record:
        params["bar_location"] = record["bar_location"]
    game = games.make(GAMES[record["task"]], dtype=jnp.float64, **params)
    table = policy_table(record["policy"], game.num_states, game.num_actions)
    policy = jnp.broadcast_to(jnp.asarray(table), game.policy_shape)
    result = exploitability(game, policy)
    for ours, theirs in [(result.policy_return, record["policy_return"]),
                         (result.best_response_return, record["best_response_return"]),
                         (result.unregularized, record["exploitability"])]:
        np.testing.assert_allclose(float(ours), theirs, rtol=1e-6, atol=1e-9)
    # MFAX's rollout keeps the distribution *before* each step: its last is mu_{T-1}.
    flow = mean_field_flow(game, policy)
    np.testing.assert_allclose(np.asarray(flow[-1].sum(-1)), record["final_mean_field"], atol=1e-9)
