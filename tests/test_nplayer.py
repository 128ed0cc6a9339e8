"""The N-player game of a mean-field game: exact and sampled N-player exploitability.

The exact method (counts of the others, Fourier transform of their next-count law) is
checked against an independent brute force that enumerates every player
(tests/nplayer_reference.py), against the single-agent oracles at N = 1, and against
the sampled method; at mean-field equilibria the N-player exploitability must fall to
the mean-field value no slower than N^-1/2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg import exploitability, games, make_game
from mfg.nplayer import (ExactTooLarge, exact_exploitability, exact_size, marginal_game, mean_field_best_response,
                         sampled_exploitability)
from mfg.nplayer.exact import count_configurations
from mfg.oracles import optimal_q_values, policy_q_values, soft_value, expected_return
from mfg.transitions import DenseTransition, to_dense
from nplayer_reference import brute_force_returns
from solvers import FixedPoint, run

LAMBDA = 0.2


def _random_policy(game, seed=1):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(game.num_actions), size=game.policy_shape[:-1])


def _equilibrium(game, iterations=400):
    result = run(FixedPoint(temperature=LAMBDA, damping=0.2), game, iterations, chunk_size=iterations)
    return np.asarray(result.state.policy)


def test_count_configurations_are_every_composition_once():
    configs = count_configurations(4, 3)
    assert configs.shape == (15, 3)
    assert np.all(configs.sum(1) == 4) and np.all(configs >= 0)
    assert len({tuple(c) for c in configs}) == 15


# ------------------------------------------------------------------ N = 1: the MDP

def _single_agent_mdp(game):
    """The MDP player 0 faces alone: reward r(s, a, delta_s (x) or delta_(s,a)), kernel likewise."""
    S, A = game.num_states, game.num_actions
    eye = jnp.eye(S, dtype=game.initial_distribution.dtype)

    def alone(t, s, a):
        view = eye[s] if game.mean_field == "state" else jnp.zeros((S, A), eye.dtype).at[s, a].set(1.0)
        reward = game.reward_fn(game.params, t, view)[s, a]
        kernel = to_dense(game.transition_fn(game.params, t, view), S).probs[s, a]
        return reward, kernel

    def tables(t):
        s, a = jnp.meshgrid(jnp.arange(S), jnp.arange(A), indexing="ij")
        return jax.vmap(jax.vmap(lambda s, a: alone(t, s, a)))(s, a)

    return make_game(name="alone", num_states=S, num_actions=A, horizon=game.horizon,
                     discount=float(game.discount), initial_distribution=np.asarray(game.initial_distribution),
                     reward_fn=lambda p, t, mu: tables(t)[0], transition_fn=lambda p, t, mu: DenseTransition(tables(t)[1]))


@pytest.mark.parametrize("game", [games.susceptible_infected(horizon=4), games.susceptible_infected(horizon=None),
                                  games.crowd_modelling(size=4, horizon=3), games.garnet(num_states=4, num_actions=2)],
                         ids=["sis-finite", "sis-stationary", "crowd-finite", "garnet-stationary"])
@pytest.mark.parametrize("temperature", [0.0, LAMBDA])
def test_one_player_is_the_single_agent_mdp(game, temperature):
    policy = jnp.asarray(_random_policy(game))
    mdp = _single_agent_mdp(game)
    joint = jnp.zeros(game.policy_shape)                     # the MDP ignores it
    q_star = optimal_q_values(mdp, joint, temperature)
    q_pi = policy_q_values(mdp, joint, policy, temperature)
    mu0 = mdp.initial_distribution
    best = jnp.dot(mu0, soft_value(q_star[0] if game.horizon else q_star, temperature))
    value = expected_return(mdp, q_pi, policy, temperature)
    result = exact_exploitability(game, policy, 1, temperature)
    np.testing.assert_allclose(result.best_response_return, best, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(result.policy_return, value, rtol=1e-11, atol=1e-11)


# ------------------------------------------------------- against the brute force

@pytest.mark.parametrize("game, num_players", [
    (games.garnet(num_states=2, num_actions=2, horizon=3), 3),               # state mean field
    (games.susceptible_infected(horizon=3), 3),                             # state-action mean field
    (games.crowd_modelling(size=3, horizon=2), 3),                          # a shift kernel
    (games.susceptible_infected(horizon=None, discount=0.5), 2),            # stationary (60 sweeps: 0.5^60 ~ 1e-18)
], ids=["garnet", "sis", "crowd", "sis-stationary"])
def test_exact_agrees_with_enumerating_every_player(game, num_players):
    policy, deviation = _random_policy(game, 1), _random_policy(game, 2)
    result = exact_exploitability(game, policy, num_players, LAMBDA, deviation=deviation)
    best, value, deviated = brute_force_returns(game, policy, num_players, LAMBDA, deviation, sweeps=60)
    np.testing.assert_allclose(result.best_response_return, best, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.policy_return, value, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.deviation_gain, deviated - value, rtol=1e-9, atol=1e-10)
    assert float(result.regularized) >= float(result.deviation_gain) - 1e-12   # the best response is best


def test_marginal_game_gives_the_state_action_games_values_over_state_counts():
    game = games.susceptible_infected(horizon=6)
    policy = _random_policy(game)
    a = exact_exploitability(game, policy, 5, LAMBDA)
    b = exact_exploitability(marginal_game(game), policy, 5, LAMBDA)
    np.testing.assert_allclose([a.best_response_return, a.policy_return], [b.best_response_return, b.policy_return],
                               rtol=1e-11)


def _congested_action_game():
    """Two states, two actions; taking action 0 costs the share of the population taking it."""
    def reward(params, t, joint):
        return jnp.zeros((2, 2), joint.dtype).at[:, 0].set(-joint[:, 0].sum())

    return make_game(name="congested_action", num_states=2, num_actions=2, horizon=3, mean_field="state_action",
                     reward_fn=reward, transition_fn=lambda p, t, joint: DenseTransition(p),
                     params=np.full((2, 2, 2), 0.5), initial_distribution=[0.5, 0.5])


def test_marginal_game_refuses_a_game_that_reads_the_actions():
    with pytest.raises(ValueError, match="genuine state-action game"):
        marginal_game(_congested_action_game())


def test_state_action_games_count_the_others_actions():
    game = _congested_action_game()
    policy, deviation = _random_policy(game, 1), _random_policy(game, 2)
    result = exact_exploitability(game, policy, 3, LAMBDA, deviation=deviation)
    best, value, deviated = brute_force_returns(game, policy, 3, LAMBDA, deviation)
    np.testing.assert_allclose([result.best_response_return, result.policy_return, result.deviation_gain],
                               [best, value, deviated - value], rtol=1e-10, atol=1e-12)


# -------------------------------------------------------- exact against sampled

def test_sampled_values_and_bounds_agree_with_the_exact_ones():
    game = games.garnet(num_states=3, num_actions=2, horizon=4)     # its kernel ignores the mean field
    policy = _random_policy(game)
    deviation = np.asarray(mean_field_best_response(game, policy, LAMBDA))
    sizes = [2, 6]
    sampled = sampled_exploitability(game, policy, sizes, jax.random.key(0), episodes=3000, temperature=LAMBDA,
                                     deviation="best_response")
    for n, s in zip(sizes, sampled):
        e = exact_exploitability(game, policy, n, LAMBDA, deviation=deviation)
        # 95% intervals, three of them per N: a small slack keeps the test from flaking.
        assert s.value.contains(float(e.policy_return), slack=0.2 * s.value.half_width)
        assert s.deviation_gain.contains(float(e.deviation_gain), slack=0.2 * s.deviation_gain.half_width)
        # lower bound <= exact <= hindsight upper bound
        assert s.deviation_gain.low <= float(e.regularized) <= s.hindsight_gain.high
        assert s.hindsight_gain.mean >= float(e.regularized) - s.hindsight_gain.half_width


def test_the_adaptive_deviation_gains_at_the_equilibrium_where_the_mean_field_best_response_cannot():
    game = marginal_game(games.susceptible_infected(horizon=None))
    policy = _equilibrium(game)
    n = 8
    exact = float(exact_exploitability(game, policy, n, LAMBDA).regularized)
    adaptive, best = (sampled_exploitability(game, policy, n, jax.random.key(3), episodes=2000, temperature=LAMBDA,
                                             deviation=d)[0] for d in ("adaptive", "best_response"))
    # At the equilibrium the mean-field best response is the policy itself: no gain.
    assert abs(best.deviation_gain.mean) < 1e-9
    # Reacting to the realized population gains, and no more than the best response can.
    assert adaptive.deviation_gain.low > 0
    assert adaptive.deviation_gain.low <= exact + adaptive.truncation_bound
    assert adaptive.hindsight_gain.high >= exact - 0.05      # the kernel reads m: the upper bound holds to O(1/N)


def test_one_compilation_serves_every_size_of_a_sweep():
    from mfg.nplayer import sampled

    game = games.susceptible_infected(horizon=5)
    policy = _random_policy(game)
    before = sampled._episodes._cache_size()
    sampled_exploitability(game, policy, [3, 10, 40], jax.random.key(1), episodes=8, batch=8)
    assert sampled._episodes._cache_size() == before + 1


def test_stationary_sampled_value_is_within_its_interval_of_the_exact_one():
    game = games.susceptible_infected(horizon=None)
    policy = _random_policy(game)
    e = exact_exploitability(game, policy, 4, LAMBDA)
    (s,) = sampled_exploitability(game, policy, 4, jax.random.key(2), episodes=2000, temperature=LAMBDA)
    assert s.truncation_bound < 0.02
    assert s.value.contains(float(e.policy_return), slack=s.truncation_bound + 0.2 * s.value.half_width)


# --------------------------------------------------- the rate at the equilibrium

@pytest.mark.parametrize("game, sizes", [
    (marginal_game(games.susceptible_infected(horizon=None)), [8, 16, 32, 64]),
    (games.crowd_modelling(size=4, horizon=5), [4, 8, 16]),
    (games.garnet(num_states=3, num_actions=2), [8, 16, 32]),
], ids=["sis", "crowd", "garnet"])
def test_exploitability_falls_to_the_mean_field_value_at_least_as_fast_as_one_over_sqrt_n(game, sizes):
    policy = _equilibrium(game)
    mean_field = float(exploitability(game, policy, LAMBDA).regularized)
    assert abs(mean_field) < 1e-8
    gaps = np.array([float(exact_exploitability(game, policy, n, LAMBDA).regularized) - mean_field for n in sizes])
    assert np.all(gaps > 0) and np.all(np.diff(gaps) < 0)
    slope = np.polyfit(np.log(sizes), np.log(gaps), 1)[0]
    assert slope <= -0.5, f"gap falls like N^{slope:.2f}, slower than N^-1/2"


# ------------------------------------------------------------------- errors

def test_too_large_an_exact_evaluation_is_refused_at_once_with_the_estimate():
    game = games.garnet(num_states=6, num_actions=2)
    with pytest.raises(ExactTooLarge, match=r"GiB.*limit"):
        exact_exploitability(game, _random_policy(game), 200)
    assert exact_size(game, 200).bytes > 1 << 34


@pytest.mark.parametrize("bad, match", [(0, "positive int"), (True, "positive int"), (2.5, "positive int")])
def test_player_counts_must_be_positive_ints(bad, match):
    game = games.susceptible_infected(horizon=3)
    with pytest.raises(ValueError, match=match):
        exact_exploitability(game, _random_policy(game), bad)
    with pytest.raises(ValueError, match=match):
        sampled_exploitability(game, _random_policy(game), [4, bad], jax.random.key(0))


def test_a_policy_of_the_wrong_shape_or_off_the_simplex_is_refused():
    game = games.susceptible_infected(horizon=3)
    with pytest.raises(ValueError, match="shape"):
        exact_exploitability(game, np.full((2, 2), 0.5), 3)
    bad = _random_policy(game)
    bad[0, 0] = [0.9, 0.9]
    with pytest.raises(ValueError, match="sum to 1"):
        exact_exploitability(game, bad, 3)
    with pytest.raises(ValueError, match="temperature"):
        exact_exploitability(game, _random_policy(game), 3, temperature=-1.0)


# ------------------------------------------------------ the experiment entry

def test_nplayer_section_writes_a_table_a_plot_and_the_summary(tmp_path):
    import json

    from experiments.cli import main

    out = tmp_path / "runs"
    assert main(["run", "nplayer_sis", "--set", "run.iterations=20", "--set", "run.chunk_size=10",
                 "--set", "nplayer.sizes=[1,4,50]", "--set", "nplayer.episodes=16", "--set", "nplayer.method=auto",
                 "--out", str(out), "--no-progress"]) == 0
    run_dir = out / "nplayer_sis"
    report = json.loads((run_dir / "nplayer" / "results.json").read_text())
    assert [r["num_players"] for r in report["sizes"]] == [1, 4, 50]
    assert all(r["method"] == "exact" for r in report["sizes"])
    assert "| 50 | exact |" in (run_dir / "nplayer" / "table.md").read_text()
    assert (run_dir / "plots" / "nplayer.png").stat().st_size > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["nplayer"]["temperature"] == LAMBDA
    # mfg nplayer on the finished run: the sampled method, at other sizes.
    assert main(["nplayer", str(run_dir), "--set", "nplayer.sizes=[3,30]", "--set", "nplayer.method=sampled",
                 "--set", "nplayer.episodes=8", "--no-progress"]) == 0
    report = json.loads((run_dir / "nplayer" / "results.json").read_text())
    assert [r["method"] for r in report["sizes"]] == ["sampled", "sampled"]
    assert report["sizes"][0]["lower_bound_half_width"] > 0


@pytest.mark.parametrize("override, match", [
    ("nplayer.sizes=[0,10]", "sizes must be positive"),
    ("nplayer.sizes=[]", "at least 1 item"),
    ("nplayer.episodes=1", "greater than or equal to 2"),
    ("nplayer.method=brute", "auto"),
    ("nplayer.colour=red", "unknown key"),
])
def test_a_bad_nplayer_section_names_the_field(override, match):
    from experiments.config import ConfigError, load_config
    from experiments.cli import EXPERIMENTS_DIR

    with pytest.raises(ConfigError, match=match):
        load_config(EXPERIMENTS_DIR / "nplayer_sis.yaml", [override])


def test_mfg_nplayer_without_sizes_on_a_run_without_the_section_says_what_to_give(tmp_path):
    from experiments.cli import main

    out = tmp_path / "runs"
    assert main(["run", "classic_crowd_modelling_fixed_point", "--set", "run.iterations=4", "--set",
                 "run.chunk_size=2", "--out", str(out), "--no-progress"]) == 0
    with pytest.raises(SystemExit, match="no nplayer section"):
        main(["nplayer", str(out / "classic_crowd_modelling_fixed_point")])
