"""The natural actor-critic (Algorithm 1): linear exact and sampled, neural, diagnostics.

Oracles: the regularized equilibrium computed by online mirror descent (itself checked
against the peers' golden values in test_golden_peers.py), and the exact exploitability.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg import features, games
from solvers import MirrorDescent, NaturalActorCritic, NeuralActorCritic, fit_rate, run
from solvers.driver import TRACE_COUNTS

LAMBDA = 1.0

# The four games of the acceptance list, in their stationary discounted form (gamma 0.9).
STATIONARY = {
    "beach_bar": lambda: games.beach_bar(horizon=None),
    "crowd_modelling": lambda: games.crowd_modelling(horizon=None),
    "susceptible_infected": lambda: games.susceptible_infected(horizon=None),
    "garnet": lambda: games.garnet(num_states=10),
}


def equilibrium(game):
    """The lambda-regularized equilibrium policy, by mirror descent to convergence."""
    return run(MirrorDescent(learning_rate=0.5, temperature=LAMBDA), game, 400, diagnose=False).state.policy


def eta_for(game, step=0.5):
    """Actor step with eta h = ``step``, h the horizon scale (1/(1-gamma) or 1)."""
    return step if game.horizon is not None else step * (1 - float(game.discount))


# ------------------------------------------------------------------- exact critic

@pytest.mark.parametrize("name", sorted(STATIONARY))
def test_exact_nac_reaches_the_regularized_equilibrium(name):
    game = STATIONARY[name]()
    result = run(NaturalActorCritic(learning_rate=eta_for(game), temperature=LAMBDA, mean_field_rate=0.2),
                 game, 400)
    assert result.metrics["exploitability"][-1] <= 1e-6
    assert np.abs(np.asarray(result.state.policy - equilibrium(game))).max() <= 1e-4
    # The carried (smoothed) mean field has converged to the one the policy induces.
    assert result.metrics["mean_field_residual"][-1] <= 1e-6
    # One-hot features: the projected critic is the exact Q (no projection error).
    assert result.metrics["projection_error"][-1] <= 1e-8


@pytest.mark.parametrize("name", ["beach_bar", "crowd_modelling"])
def test_exact_nac_on_finite_horizon_games(name):
    game = games.make(name)  # the peers' finite-horizon definitions
    result = run(NaturalActorCritic(learning_rate=eta_for(game), temperature=LAMBDA, mean_field_rate=0.2),
                 game, 400)
    assert result.state.policy.shape == game.policy_shape
    assert result.metrics["exploitability"][-1] <= 1e-6
    assert np.abs(np.asarray(result.state.policy - equilibrium(game))).max() <= 1e-4


def test_exploitability_decreases_and_a_rate_is_fitted():
    game = STATIONARY["crowd_modelling"]()
    metrics = run(NaturalActorCritic(learning_rate=eta_for(game, 0.2), temperature=LAMBDA), game, 200).metrics
    expl = metrics["exploitability"]
    assert expl[-1] < 1e-3 * expl[:10].max()
    assert fit_rate(expl[20:]) < 0  # a decreasing power law fits the tail
    for name in ("mean_field_step", "policy_kl", "entropy", "weight_norm", "critic_error"):
        assert np.all(np.isfinite(metrics[name])), name
    assert np.all(metrics["all_finite"] == 1)


# ----------------------------------------------------------------- sampled critic

@pytest.mark.parametrize("name", sorted(STATIONARY))
def test_online_nac_with_ten_thousand_agents(name):
    game = STATIONARY[name]()
    solver = NaturalActorCritic(learning_rate=eta_for(game, 0.1), temperature=LAMBDA, mean_field_rate=0.1,
                                critic="sampled", num_agents=10_000, td_steps=10)
    metrics = run(solver, game, 300, key=jax.random.key(7)).metrics
    assert metrics["exploitability"][-50:].max() <= 1e-2
    assert np.isfinite(metrics["td_error"]).all()


def test_online_error_shrinks_as_agents_and_td_steps_grow():
    game = STATIONARY["garnet"]()
    keys = jax.random.split(jax.random.key(1), 3)
    finals = []
    for agents, td_steps in [(100, 2), (1000, 5), (10_000, 10)]:
        solver = NaturalActorCritic(learning_rate=0.01, temperature=LAMBDA, mean_field_rate=0.1,
                                    critic="sampled", num_agents=agents, td_steps=td_steps)
        metrics = run(solver, game, 300, key=keys).metrics
        finals.append(metrics["exploitability"][:, -100:].mean())
    # Each 10x more samples per iteration lowers the plateau by at least 3x (measured ~7x).
    assert finals[1] < finals[0] / 3 and finals[2] < finals[1] / 3, finals


def test_sampled_critic_tracks_the_exact_q():
    game = STATIONARY["beach_bar"]()
    solver = NaturalActorCritic(learning_rate=eta_for(game, 0.1), temperature=LAMBDA, critic="sampled",
                                num_agents=10_000, td_steps=10)
    metrics = run(solver, game, 200).metrics
    assert metrics["critic_error"][-1] < 0.05 * metrics["critic_error"][0]


# ------------------------------------------------------------- compressed features

def test_compressed_features_plateau_at_their_projection_error():
    game = games.crowd_modelling(size=30, horizon=None)
    plateaus, errors = [], []
    for centers in (3, 5, 8):
        phi = features.rbf(game, centers)
        assert phi.num_features < game.num_states * game.num_actions
        metrics = run(NaturalActorCritic(features=phi, learning_rate=0.05, temperature=LAMBDA, mean_field_rate=0.1),
                      game, 400).metrics
        tail = metrics["exploitability"][-100:]
        # A plateau: no progress over the last 100 iterations...
        assert np.ptp(tail) <= 0.01 * tail.mean()
        plateaus.append(tail.mean())
        errors.append(metrics["projection_error"][-1])
    # ...that the diagnostics explain: a positive projection error, shrinking with the
    # feature count, and the plateau bounded by it (exploitability <= 2 eps^2 measured;
    # the analysis gives O(eps) / (1 - gamma)^2).
    assert errors[0] > errors[1] > errors[2] > 0
    assert plateaus[0] > plateaus[1] > plateaus[2] > 1e-5
    assert all(p <= 2 * e**2 for p, e in zip(plateaus, errors)), (plateaus, errors)


# -------------------------------------------------------------------------- neural

@pytest.mark.parametrize("name", ["beach_bar", "garnet"])
def test_neural_nac_with_exact_critic(name):
    game = STATIONARY[name]()
    solver = NeuralActorCritic(learning_rate=eta_for(game), temperature=LAMBDA, hidden=(32, 32))
    metrics = run(solver, game, 300).metrics
    assert metrics["exploitability"][-20:].max() <= 1e-2


@pytest.mark.parametrize("name", ["beach_bar", "susceptible_infected"])
def test_neural_nac_with_sampled_critic(name):
    game = STATIONARY[name]()
    # A smaller Adam step than the default (3e-3): the semi-gradient TD noise at 1e-2 leaves
    # beach bar at ~1e-2 on some random streams.
    solver = NeuralActorCritic(learning_rate=eta_for(game), temperature=LAMBDA, hidden=(32, 32),
                               critic="sampled", num_agents=10_000, td_steps=10, critic_optimizer_rate=3e-3)
    metrics = run(solver, game, 300).metrics
    assert metrics["exploitability"][-20:].max() <= 1e-2


# -------------------------------------------------------- sweeps, seeds, compilation

def test_hyper_parameter_grid_and_seeds_run_without_recompiling():
    game = STATIONARY["susceptible_infected"]()
    before = TRACE_COUNTS["chunk"]
    for eta in (0.01, 0.03):  # a new value of a traced hyper-parameter: same program
        run(NaturalActorCritic(learning_rate=eta, critic="sampled", num_agents=500), game, 20)
    assert TRACE_COUNTS["chunk"] == before + 1
    grid = NaturalActorCritic(learning_rate=jnp.array([0.01, 0.02, 0.04]), critic="sampled", num_agents=500)
    swept = run(grid, game, 20, sweep=("learning_rate",))
    assert swept.metrics["exploitability"].shape == (3, 20)
    seeds = run(NaturalActorCritic(learning_rate=0.01, critic="sampled", num_agents=500), game, 20,
                key=jax.random.split(jax.random.key(0), 4))
    assert seeds.metrics["exploitability"].shape == (4, 20)
    assert len(np.unique(seeds.metrics["td_error"][:, -1])) == 4  # independent streams


def test_same_key_same_numbers():
    game = STATIONARY["garnet"]()
    solver = NaturalActorCritic(learning_rate=0.01, critic="sampled", num_agents=1000)
    a = run(solver, game, 30, key=jax.random.key(3))
    b = run(solver, game, 30, key=jax.random.key(3))
    np.testing.assert_array_equal(a.state.policy, b.state.policy)
    np.testing.assert_array_equal(a.metrics["exploitability"], b.metrics["exploitability"])


def test_stop_rule_on_the_residual():
    game = STATIONARY["beach_bar"]()
    result = run(NaturalActorCritic(learning_rate=0.05, mean_field_rate=0.5), game, 1000, chunk_size=10,
                 stop_residual=1e-8)
    assert result.iterations < 1000
    assert result.metrics["mean_field_residual"][-1] <= 1e-8


# ------------------------------------------------------------------------ bad input

def test_bad_hyper_parameters_are_rejected_with_the_allowed_range():
    game = STATIONARY["beach_bar"]()
    with pytest.raises(ValueError, match=r"learning_rate \* temperature \* h <= 1"):
        NaturalActorCritic(learning_rate=0.5, temperature=1.0).init(game)
    with pytest.raises(ValueError, match="critic must be 'exact' or 'sampled'"):
        NaturalActorCritic(critic="monte_carlo")
    with pytest.raises(ValueError, match="population_steps must be an int >= 1, got 0"):
        NaturalActorCritic(population_steps=0)
    with pytest.raises(ValueError, match="population_steps > 1 needs the exact critic"):
        NaturalActorCritic(critic="sampled", population_steps=5)
    with pytest.raises(NotImplementedError, match="stationary discounted games"):
        NaturalActorCritic(critic="sampled").init(games.beach_bar())
    with pytest.raises(ValueError, match="state features have 7 rows"):
        NaturalActorCritic(features=features.rbf(games.beach_bar(horizon=None, n=7), 3)).init(game)
    with pytest.raises(ValueError, match="cannot sweep"):
        run(NaturalActorCritic(critic="sampled"), game, 1, sweep=("num_agents",))
