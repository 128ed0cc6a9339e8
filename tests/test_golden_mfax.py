"""Our exact oracles reproduce MFAX's exploitability on its own environments.

Golden values: tests/data/golden_mfax.json, written by ``benchmarks/peers/golden_mfax.py``
with MFAX (CWibault/mfax, source copy, float64): MFAX's exploitability, policy return
and best-response return (mu_0-weighted, discount 0.99, 30 decisions) of the uniform
policy and three random state-dependent policies, on its push-forward linear-quadratic
and beach-bar environments at their defaults (no common noise), the beach bar at the
bar locations MFAX drew.  MFAX has no tabular algorithm in common with this library, so
the goldens are of fixed policies; its mean-field rollout is compared too (the last
epoch's distribution).

The macroeconomics model (``mfax_endogenous``, discount 0.95) carries common noise: its
records hold the productivity paths MFAX drew (the zero path for ``nu = 0``), and MFAX's
number is the mean over those paths of each path's exploitability
(``common_noise_exploitability``); its interest-rate path is compared too.
"""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from mfg import games
from mfg.games.mfax import _endogenous_prices, common_noise_exploitability, with_common_noise
from mfg.oracles import exploitability, mean_field_flow

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_mfax.json").read_text())
TOY = [r for r in GOLDEN["records"] if r["task"] != "endogenous"]
ECONOMY = [r for r in GOLDEN["records"] if r["task"] == "endogenous"]
GAMES = {"linear_quadratic": "mfax_linear_quadratic", "beach_bar_1d": "mfax_beach_bar"}


def policy_table(name: str, num_states: int, num_actions: int) -> np.ndarray:
    if name == "uniform":
        return np.full((num_states, num_actions), 1.0 / num_actions)
    seed = int(name.removeprefix("dirichlet_seed"))
    return np.random.default_rng(seed).dirichlet(np.ones(num_actions), size=num_states)


def case_id(record) -> str:
    return f"{record['task']}-{record.get('noise', '')}{record['policy']}-key{record['key']}"


def test_every_golden_record_is_checked():
    assert len(TOY) == 12 and len(ECONOMY) == 6


@pytest.mark.parametrize("record", TOY, ids=case_id)
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


@pytest.mark.parametrize("record", ECONOMY, ids=case_id)
def test_mfax_macroeconomy_exploitability_under_common_noise_is_reproduced(record):
    game = games.make("mfax_endogenous", dtype=jnp.float64, discount=record["gamma"], horizon=record["horizon"])
    table = policy_table(record["policy"], game.num_states, game.num_actions)
    policy = jnp.broadcast_to(jnp.asarray(table), game.policy_shape)
    paths = jnp.asarray(record["common_noise_paths"])                       # [P, T], MFAX's draws
    per_path = common_noise_exploitability(game, policy, paths)
    assert per_path.unregularized.shape == (paths.shape[0],)
    for ours, theirs in [(per_path.policy_return.mean(), record["policy_return"]),
                         (per_path.best_response_return.mean(), record["best_response_return"]),
                         (per_path.unregularized.mean(), record["exploitability"])]:
        np.testing.assert_allclose(float(ours), theirs, rtol=1e-6)
    # the first path's rollout: its last distribution and the interest rate of every epoch
    on_path = with_common_noise(game, paths[0])
    flow = mean_field_flow(on_path, policy).sum(-1)                           # [T, S]
    np.testing.assert_allclose(np.asarray(flow[-1]), record["final_mean_field"], atol=1e-9)
    interest = [float(_endogenous_prices(on_path.params, mu, z)[0]) for mu, z in zip(flow, paths[0])]
    np.testing.assert_allclose(interest, record["interest_rate_path"], rtol=1e-9)


def test_common_noise_moves_the_economy_and_a_path_of_the_wrong_length_is_refused():
    game = games.make("mfax_endogenous", dtype=jnp.float64)
    policy = jnp.full(game.policy_shape, 1.0 / game.num_actions)
    calm = exploitability(game, policy).unregularized
    shocked = exploitability(with_common_noise(game, jnp.full(game.horizon, 0.05)), policy).unregularized
    assert abs(float(shocked) - float(calm)) > 1e-3       # higher productivity, other prices, other values
    with pytest.raises(ValueError, match="length horizon = 128"):
        games.make("mfax_endogenous", common_noise=np.zeros(10))
    with pytest.raises(ValueError, match="no common noise"):
        with_common_noise(games.make("mfax_beach_bar"), jnp.zeros(30))


def test_geometric_interval_is_searchsorted():
    """The macroeconomy's interval lookup (a logarithm and a correction) is MFAX's
    clip(searchsorted(grid, x, side="right") - 1, 0, n - 2), grid points and their
    neighbours included, below, inside and above the grid."""
    from mfg.games.mfax import _geometric_interval
    for dtype in (jnp.float32, jnp.float64):
        game = games.make("mfax_endogenous", dtype=dtype)
        grid = np.asarray(game.params["wealth_grid"])
        rng = np.random.default_rng(0)
        points = np.concatenate([grid, np.nextafter(grid, -np.inf), np.nextafter(grid, np.inf),
                                 rng.uniform(0.0, 130.0, 20_000), rng.uniform(0.0, 0.05, 2_000), [0.0, 99.0, 1e4]])
        points = jnp.asarray(np.maximum(points, 0.0), dtype)
        expected = np.clip(np.searchsorted(grid, np.asarray(points), side="right") - 1, 0, len(grid) - 2)
        np.testing.assert_array_equal(np.asarray(_geometric_interval(game.params, points)), expected)


@pytest.mark.parametrize("idio_noise", [True, False])
def test_the_economy_composed_kernel_is_mfaxs_flat_table(idio_noise):
    """The wealth step then the income step (6 entries per (s, a)) is MFAX's table of 8."""
    from mfg.transitions import to_dense
    composed = games.make("mfax_endogenous", dtype=jnp.float64, wealth_states=30, idio_noise=idio_noise)
    flat = games.make("mfax_endogenous", dtype=jnp.float64, wealth_states=30, idio_noise=idio_noise, kernel="sparse")
    mu = jnp.asarray(np.random.default_rng(0).dirichlet(np.ones(composed.num_states)))
    joint = mu[:, None] * jnp.full((1, composed.num_actions), 1.0 / composed.num_actions)
    for t in (0, 5):
        np.testing.assert_allclose(np.asarray(to_dense(composed.transition(t, joint), composed.num_states).probs),
                                   np.asarray(to_dense(flat.transition(t, joint), flat.num_states).probs),
                                   rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="'composed' or 'sparse'"):
        games.make("mfax_endogenous", kernel="dense")


@pytest.mark.parametrize("name, kernels", [("mfax_linear_quadratic", ("sparse", "pull", "composed", "auto")),
                                           ("mfax_beach_bar", ("sparse", "pull", "auto"))])
def test_every_storage_of_a_toy_kernel_is_the_same_kernel(name, kernels):
    """The move-then-noise composition and the gather push are MFAX's table, exactly."""
    from mfg.transitions import to_dense
    built = [games.make(name, dtype=jnp.float64, kernel=k) for k in kernels]
    joint = jnp.zeros((built[0].num_states, built[0].num_actions))        # the kernel does not read it
    dense = [np.asarray(to_dense(game.transition(jnp.int32(0), joint), game.num_states).probs) for game in built]
    for other in dense[1:]:
        np.testing.assert_allclose(other, dense[0], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="kernel must be"):
        games.make(name, kernel="composed" if name == "mfax_beach_bar" else "dense")


@pytest.mark.parametrize("kernel", ["sparse", "composed"])
def test_the_lq_next_mean_position_is_the_mean_of_the_pushed_population(kernel):
    """m_{t+1} read through E[s'|s, a] (fixed at build) is sum_s s push(P, L)(s)."""
    from mfg.games.mfax import _next_mean
    from mfg.transitions import push_forward
    game = games.make("mfax_linear_quadratic", dtype=jnp.float64, kernel=kernel)
    joint = jnp.asarray(np.random.default_rng(3).dirichlet(np.ones(game.num_states * game.num_actions))
                        .reshape(game.num_states, game.num_actions))
    pushed = push_forward(game.transition(jnp.int32(0), joint), joint)
    np.testing.assert_allclose(float(_next_mean(game.params, joint)),
                               float(jnp.dot(pushed, jnp.arange(game.num_states, dtype=jnp.float64))), rtol=1e-13)
