"""The game catalogue: every storage form of a kernel describes the same game, and each
game is a valid MFG of the documented size."""

import jax
import numpy as np
import pytest

from mfg import games, uniform_policy
from mfg.oracles import exploitability, mean_field_flow
from mfg.transitions import ShiftTransition, SparseTransition, DenseTransition
from solvers import MirrorDescent, random_policy, run

GRID_GAMES = {
    "linear_quadratic_openspiel": dict(size=9, horizon=4),
    "crowd_modelling": dict(size=9, horizon=4),
    "crowd_modelling_2d": dict(size=5, horizon=3),
    "beach_bar": dict(n=11, horizon=4),
    "crowd_motion": dict(torus_l=6, torus_w=5, horizon=4, bar_path=[(3, 2)] * 4),
}
TABLE_GAMES = {
    "garnet": dict(num_states=30, horizon=4),
    "building_evacuation": dict(n_floor=2, floor_l=3, floor_w=4),
    "predator_prey": dict(size=4, horizon=3, initial_positions=[(0, 0), (3, 0), (1, 2)]),
}


@pytest.mark.parametrize("name", sorted(GRID_GAMES) + sorted(TABLE_GAMES))
def test_every_kernel_storage_gives_the_same_game(name):
    params = {**GRID_GAMES, **TABLE_GAMES}[name]
    kinds = ["shift", "pull", "sparse", "dense"] if name in GRID_GAMES else ["pull", "sparse", "dense"]
    results = []
    for kind in kinds:
        game = games.make(name, kernel=kind, **params)
        policy = random_policy(game, jax.random.key(0))
        flow = mean_field_flow(game, policy)
        trained = run(MirrorDescent(learning_rate=0.5, temperature=0.2), game, 5, chunk_size=5)
        results.append((flow, exploitability(game, policy, 0.2).regularized,
                        trained.metrics["exploitability"]))
    for flow, expl, traj in results[1:]:
        np.testing.assert_allclose(flow, results[0][0], atol=1e-13)
        np.testing.assert_allclose(expl, results[0][1], rtol=1e-11)
        np.testing.assert_allclose(traj, results[0][2], rtol=1e-10)


def test_kernel_forms_are_what_they_say():
    def kernel(kind):
        game = games.crowd_modelling(kernel=kind)
        return game.transition(0, mean_field_flow(game, uniform_policy(game))[0])

    assert isinstance(kernel("shift"), ShiftTransition)
    assert isinstance(kernel("pull"), SparseTransition) and kernel("pull").pull_sources is not None
    assert kernel("sparse").pull_sources is None
    assert isinstance(kernel("dense"), DenseTransition)
    with pytest.raises(ValueError, match="kernel must be one of"):
        games.crowd_modelling(kernel="banded")


@pytest.mark.parametrize("name,params,S,A,T", [
    ("left_right", {}, 3, 2, 2),
    ("rock_paper_scissors", {}, 4, 3, 2),
    ("susceptible_infected", {}, 2, 2, 51),
    ("beach_bar", dict(n=100, horizon=11, bar_loc=50), 100, 3, 11),
    ("crowd_motion", {}, 400, 5, 4),
    ("linear_quadratic", {}, 11, 5, 4),
    ("building_evacuation", {}, 500, 6, 4),
    ("conservative_treasure_hunting", {}, 3, 3, 6),
    ("random_linear", {}, 5, 5, 4),
    ("crowd_modelling", {}, 10, 3, 10),
    ("crowd_modelling_2d", {}, 100, 5, 10),
    ("garnet", dict(num_states=50, num_actions=4), 50, 4, None),
    ("linear_quadratic_openspiel", {}, 10, 7, 10),
    ("predator_prey", {}, 75, 5, 10),
])
def test_catalogue_sizes_match_the_peers_defaults(name, params, S, A, T):
    game = games.make(name, **params)
    assert (game.num_states, game.num_actions, game.horizon) == (S, A, T)


SIZE_PROBES = {
    "beach_bar": dict(n=7), "crowd_motion": dict(torus_l=3, torus_w=4), "linear_quadratic": dict(el=3, m=1),
    "building_evacuation": dict(n_floor=2, floor_l=3, floor_w=4), "random_linear": dict(n=3),
    "conservative_treasure_hunting": dict(n=4, r=(1.0,) * 4), "crowd_modelling": dict(size=7),
    "crowd_modelling_2d": dict(size=4), "linear_quadratic_openspiel": dict(size=6, actions_per_side=2),
    "predator_prey": dict(size=3), "serverless": dict(max_containers=3, max_cpu_steps=2, num_load_bins=4),
    "garnet": dict(num_states=6, num_actions=2),
}


@pytest.mark.parametrize("name", sorted(games.GAMES))
def test_size_of_gives_the_built_games_sizes_without_building_them(name):
    for params in ({}, SIZE_PROBES.get(name, {})):
        game = games.make(name, **params)
        assert games.size_of(name, **params) == (game.num_states, game.num_actions, game.horizon), params


def test_structured_games_scale_to_a_million_states():
    game = games.crowd_modelling(size=10**6, horizon=2, dtype=np.float32)
    flow = mean_field_flow(game, uniform_policy(game))
    np.testing.assert_allclose(float(flow[1].sum()), 1.0, rtol=1e-5)


def test_unknown_game_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown game 'crowd'.*crowd_modelling"):
        games.make("crowd")


def test_linear_quadratic_reverting_path_equals_the_fixed_kernel_without_reversion():
    """The mean-reverting (mean-field-dependent) kernel with negligible reversion gives the
    same game as the fixed displacement kernel."""
    fixed = games.linear_quadratic_openspiel(size=9, horizon=5)
    reverting = games.linear_quadratic_openspiel(size=9, horizon=5, mean_revert=1e-300)
    policy = random_policy(fixed, jax.random.key(3))
    np.testing.assert_allclose(exploitability(fixed, policy, 0.1).regularized,
                               exploitability(reverting, policy, 0.1).regularized, rtol=1e-12)


def test_walls_keep_the_population_out():
    walls = [(2, y) for y in range(5)]
    game = games.crowd_modelling_2d(size=5, horizon=6, forbidden_states=walls,
                                    initial_distribution=[((0, 0), 1.0)])
    flow = mean_field_flow(game, random_policy(game, jax.random.key(0)))
    mu = np.asarray(flow.sum(-1)).reshape(6, 5, 5)
    assert mu[:, 2, :].max() == 0.0
    np.testing.assert_allclose(mu.sum(axis=(1, 2)), 1.0, atol=1e-12)
