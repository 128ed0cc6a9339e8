"""Baseline solvers: they agree on the regularized equilibrium, compile once per
configuration, batch seeds under vmap and obey the driver's chunking and stop rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg import games
from solvers import FictitiousPlay, FixedPoint, MirrorDescent, random_policy, run
from solvers.driver import TRACE_COUNTS, fit_rate


@pytest.mark.parametrize("game,lam", [
    (games.crowd_modelling(size=10, horizon=10), 1.0),
    (games.susceptible_infected(), 0.5),
    (games.garnet(num_states=15, seed=2, discount=0.9), 0.5),
], ids=["crowd_modelling", "sis", "garnet_stationary"])
def test_three_solvers_reach_the_same_regularized_equilibrium(game, lam):
    fixed = run(FixedPoint(temperature=lam, damping=0.2), game, 1500, diagnose=False, chunk_size=500)
    omd = run(MirrorDescent(learning_rate=0.2, temperature=lam), game, 1500, diagnose=False, chunk_size=500)
    fict = run(FictitiousPlay(temperature=lam), game, 8000, diagnose=False, chunk_size=2000)
    ref = np.asarray(fixed.state.policy)
    assert np.abs(np.asarray(omd.state.policy) - ref).max() <= 1e-4
    assert np.abs(np.asarray(fict.state.policy) - ref).max() <= 1e-4


def test_one_compilation_per_configuration():
    game = games.beach_bar(n=16, horizon=4)
    run(MirrorDescent(learning_rate=0.5, temperature=0.1), game, 10, chunk_size=4)
    before = TRACE_COUNTS["chunk"]
    # new hyper-parameter values, a different number of iterations, a short last chunk:
    for lr, lam, n in [(0.3, 0.2, 7), (1.0, 0.0, 9), (0.1, 1.0, 4)]:
        run(MirrorDescent(learning_rate=lr, temperature=lam), game, n, chunk_size=4)
    assert TRACE_COUNTS["chunk"] == before


def test_seeds_run_batched_and_match_single_runs():
    game = games.beach_bar(n=16, horizon=4)
    keys = jax.random.split(jax.random.key(0), 3)
    policies = jax.vmap(lambda k: random_policy(game, k))(keys)
    solver = MirrorDescent(learning_rate=0.5, temperature=0.2)
    batched = run(solver, game, 20, policy=policies, chunk_size=8)
    assert batched.metrics["exploitability"].shape == (3, 20)
    for i in range(3):
        single = run(solver, game, 20, policy=policies[i], chunk_size=8)
        np.testing.assert_allclose(batched.state.policy[i], single.state.policy, rtol=1e-12)
        np.testing.assert_allclose(batched.metrics["exploitability"][i],
                                   single.metrics["exploitability"], rtol=1e-10, atol=1e-14)


def test_chunking_does_not_change_results():
    game = games.crowd_modelling(size=12, horizon=5)
    a = run(FictitiousPlay(), game, 25, chunk_size=25)
    b = run(FictitiousPlay(), game, 25, chunk_size=7)
    np.testing.assert_array_equal(a.state.policy, b.state.policy)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k])


def test_resuming_from_a_state_continues_the_same_run():
    game = games.crowd_modelling(size=12, horizon=5)
    solver = MirrorDescent(learning_rate=0.5, temperature=0.3)
    whole = run(solver, game, 30, chunk_size=10)
    first = run(solver, game, 12, chunk_size=10)
    rest = run(solver, game, 18, state=first.state, chunk_size=10)
    np.testing.assert_allclose(rest.state.policy, whole.state.policy, rtol=1e-13)
    np.testing.assert_allclose(rest.metrics["exploitability"], whole.metrics["exploitability"][12:], rtol=1e-10)


def test_stop_rule_stops_at_the_first_chunk_below_tolerance():
    game = games.beach_bar(n=16, horizon=4)
    result = run(FixedPoint(temperature=1.0), game, 1000, chunk_size=10, stop_exploitability=1e-8)
    assert result.iterations < 1000 and result.iterations % 10 == 0
    assert result.metrics["exploitability"][-1] <= 1e-8
    assert np.all(result.metrics["exploitability"][:-10] > 1e-8) or result.iterations == 10
    assert result.metrics["exploitability"].shape == (result.iterations,)


def test_diagnostics_are_consistent():
    game = games.crowd_modelling(size=10, horizon=6)
    result = run(MirrorDescent(learning_rate=0.3, temperature=0.5), game, 60, chunk_size=20)
    m = result.metrics
    assert np.all(m["all_finite"] == 1.0)
    assert np.all(m["exploitability"] >= -1e-10) and np.all(m["exploitability_unreg"] >= -1e-10)
    assert np.all(m["policy_kl"] >= 0) and np.all(m["mean_field_step"] >= 0)
    assert np.all((m["entropy"] >= 0) & (m["entropy"] <= np.log(3) + 1e-12))
    # converging: the steps shrink and exploitability falls
    assert m["mean_field_step"][-1] < m["mean_field_step"][0]
    assert m["exploitability"][-1] < 1e-3 * m["exploitability"][0]


def test_fictitious_play_rate_is_about_one_over_t_on_a_monotone_game():
    game = games.crowd_modelling(size=10, horizon=10, move_penalty=0.0)
    result = run(FictitiousPlay(), game, 300, chunk_size=100)
    rate = fit_rate(result.metrics["exploitability_unreg"], skip=10)
    assert -1.6 < rate < -0.5


def test_bad_arguments_are_reported():
    game = games.beach_bar()
    with pytest.raises(ValueError, match="initial policy must have shape"):
        run(MirrorDescent(), game, 3, policy=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        run(MirrorDescent(), game, 3, chunk_size=0)
