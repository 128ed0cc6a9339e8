"""The stationary mean-field solve, truncated evaluation and policy iteration.

Specification:
* the undamped power iteration cycles on a periodic chain and reports it (it never
  spins silently to a hidden cap); damping or the linear solve of the frozen chain fix it;
* every method reaches the same fixed point where one exists; ``fixed_steps`` takes
  exactly its steps; a warm start saves iterations and changes nothing else;
* truncated evaluation is the n-sweep Bellman recursion (error O(gamma^n)) and, used by
  mirror descent, moves the fixed point by O(gamma^n);
* policy iteration is exact on an MDP and its variants run on both horizons.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfg import games
from mfg.game import uniform_policy
from mfg.oracles import (MeanFieldSolve, exploitability, mean_field_residual, optimal_q_values,
                         policy_q_values, solve_mean_field, truncated_q_values)
from mfg.transitions import push_forward
from solvers import MirrorDescent, PolicyIteration, random_policy, run
from solvers.driver import MeanFieldSolveWarning

ALWAYS_SWITCH = jnp.array([[0.0, 1.0], [0.0, 1.0]])


def periodic_game():
    """Bench-MFG's contraction game from (0.9, 0.1): 'always switch' makes a 2-cycle."""
    return games.make("benchmfg_contraction", initial_distribution=(0.9, 0.1))


# ------------------------------------------------------------------ the solve itself

def test_undamped_power_iteration_cycles_on_a_periodic_chain_and_says_so():
    joint, stats = solve_mean_field(periodic_game(), ALWAYS_SWITCH, MeanFieldSolve(max_iterations=50))
    assert int(stats.iterations) == 50 and float(stats.converged) == 0.0
    np.testing.assert_allclose(float(stats.change), 1.6, rtol=1e-12)   # |0.9 - 0.1| twice
    np.testing.assert_allclose(joint.sum(-1), [0.9, 0.1], atol=1e-12)   # wherever the cycle stopped


@pytest.mark.parametrize("solve", [MeanFieldSolve(damping=0.5), MeanFieldSolve(method="linear")],
                         ids=["damped", "linear"])
def test_damping_or_the_linear_solve_converge_on_the_periodic_chain(solve):
    joint, stats = solve_mean_field(periodic_game(), ALWAYS_SWITCH, solve)
    assert float(stats.converged) == 1.0 and int(stats.iterations) <= 5
    np.testing.assert_allclose(joint.sum(-1), [0.5, 0.5], atol=1e-14)


@pytest.mark.parametrize("game", [games.garnet(num_states=40, seed=1),
                                  games.susceptible_infected(horizon=None)], ids=["garnet", "sis"])
def test_every_method_finds_the_same_fixed_point(game):
    policy = random_policy(game, jax.random.key(0))
    reference, _ = solve_mean_field(game, policy)
    for solve in [MeanFieldSolve(damping=0.3), MeanFieldSolve(method="linear"),
                  MeanFieldSolve(method="linear", damping=0.7)]:
        joint, stats = solve_mean_field(game, policy, solve)
        assert float(stats.converged) == 1.0
        np.testing.assert_allclose(joint, reference, atol=1e-12)
        assert float(mean_field_residual(game, policy, joint)) < 1e-12


def test_the_linear_solve_is_exact_in_one_iteration_for_a_fixed_kernel():
    game = games.garnet(num_states=40, seed=1)
    policy = random_policy(game, jax.random.key(0))
    _, stats = solve_mean_field(game, policy, MeanFieldSolve(method="linear"))
    assert int(stats.iterations) == 2          # one solve, one that confirms the change is 0
    _, power = solve_mean_field(game, policy)
    assert int(power.iterations) > 20


def test_fixed_steps_take_exactly_their_steps():
    game = games.garnet(num_states=30, seed=2)
    policy = random_policy(game, jax.random.key(1))
    joint, stats = solve_mean_field(game, policy, MeanFieldSolve(max_iterations=7, fixed_steps=True))
    mu = game.initial_distribution
    for _ in range(7):
        mu = push_forward(game.transition(0, mu[:, None] * policy), mu[:, None] * policy)
    assert int(stats.iterations) == 7
    np.testing.assert_allclose(joint.sum(-1), mu, atol=1e-15)


def test_a_warm_start_saves_iterations_and_changes_nothing_else():
    game = games.garnet(num_states=60, seed=3)
    cold = MirrorDescent(learning_rate=0.3, temperature=0.1)
    warm = MirrorDescent(learning_rate=0.3, temperature=0.1, mean_field_solve=MeanFieldSolve(warm_start=True))
    a, b = run(cold, game, 100), run(warm, game, 100)
    np.testing.assert_allclose(b.metrics["exploitability"], a.metrics["exploitability"], rtol=1e-9, atol=1e-13)
    # measured: 50 iterations a solve from mu_0, 35 from the previous mean field
    assert b.metrics["mean_field_iterations"][-10:].max() < 0.8 * a.metrics["mean_field_iterations"][-10:].min()


def test_the_driver_warns_when_a_solve_hits_its_cap():
    game = periodic_game()
    solver = PolicyIteration(mean_field_solve=MeanFieldSolve(max_iterations=30))
    with pytest.warns(MeanFieldSolveWarning, match="did not converge for the initial policy.*30 iterations"):
        run(solver, game, 3, policy=ALWAYS_SWITCH)
    # a step that lands on the periodic policy: mirror descent with a huge step to 'switch'
    game = games.make("benchmfg_contraction", switching_cost=-5.0, initial_distribution=(0.9, 0.1))
    solver = MirrorDescent(learning_rate=100.0, mean_field_solve=MeanFieldSolve(max_iterations=30))
    with pytest.warns(MeanFieldSolveWarning, match="did not converge at iteration 1:"):
        result = run(solver, game, 3)
    assert result.metrics["mean_field_iterations"].max() == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeanFieldSolveWarning)
        fixed = PolicyIteration(mean_field_solve=MeanFieldSolve(max_iterations=30, fixed_steps=True))
        run(fixed, game, 3, policy=ALWAYS_SWITCH)                     # asked for: no warning
        run(PolicyIteration(mean_field_solve={"damping": 0.5}), game, 3, policy=ALWAYS_SWITCH)


@pytest.mark.parametrize("options, message", [
    ({"method": "newton"}, "method must be 'power' or 'linear'"),
    ({"damping": 0.0}, r"damping must lie in \(0, 1\]"),
    ({"damping": 1.5}, r"damping must lie in \(0, 1\]"),
    ({"max_iterations": 0}, "max_iterations must be a positive int"),
    ({"tol": float("nan")}, "tol must be finite"),
    ({"dampnig": 0.5}, r"unknown mean-field solve option\(s\) \['dampnig'\]"),
])
def test_bad_solve_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        MirrorDescent(mean_field_solve=options)


def test_the_linear_solve_refuses_a_game_too_large_to_solve_densely():
    game = games.garnet(num_states=2000, seed=0)
    with pytest.raises(ValueError, match="2000 states"):
        solve_mean_field(game, uniform_policy(game), MeanFieldSolve(method="linear"))


# ---------------------------------------------------------------- truncated evaluation

def test_truncated_evaluation_is_the_n_sweep_recursion():
    game = games.garnet(num_states=30, seed=5)
    policy = random_policy(game, jax.random.key(4))
    joint, _ = solve_mean_field(game, policy)
    reward = game.reward(0, joint)
    np.testing.assert_allclose(truncated_q_values(game, joint, policy, sweeps=1), reward, atol=0)
    exact = policy_q_values(game, joint, policy, 0.2)
    for n in (10, 40):
        error = np.abs(truncated_q_values(game, joint, policy, 0.2, sweeps=n) - exact).max()
        bound = 0.9 ** n * np.abs(exact).max() / (1 - 0.9) * 2
        assert 0 < error <= bound
    np.testing.assert_allclose(truncated_q_values(game, joint, None, 0.2, sweeps=400),
                               optimal_q_values(game, joint, 0.2), rtol=1e-12)


def test_truncated_evaluation_moves_the_mirror_descent_fixed_point_less_as_sweeps_grow():
    """With n sweeps, OMD's fixed point is pi = softmax(Q_n^pi / lambda): off the
    equilibrium by a policy error that falls geometrically in n (here faster than gamma^n:
    the truncation error is nearly the same for every action), with an exploitability
    of second order in it.  Measured: 5.5e-2, 1.4e-4, 1.9e-8 at n = 2, 5, 10."""
    game = games.garnet(num_states=30, seed=5)
    solver = lambda n: MirrorDescent(learning_rate=0.3, temperature=1.0, evaluation_sweeps=n)
    exact = run(solver(0), game, 100)
    assert abs(exact.metrics["exploitability"][-1]) < 1e-10
    runs = {n: run(solver(n), game, 100) for n in (2, 5, 10, 40)}
    distance = {n: float(np.abs(r.state.policy - exact.state.policy).max()) for n, r in runs.items()}
    final = {n: r.metrics["exploitability"][-1] for n, r in runs.items()}
    assert distance[2] > 10 * distance[5] > 100 * distance[10] and distance[40] < 1e-12
    assert final[2] > final[5] > final[10] > 1e-9
    # the iterates approach their fixed point as fast as the exact ones do
    np.testing.assert_allclose(runs[40].metrics["exploitability"][:30], exact.metrics["exploitability"][:30],
                               rtol=1e-6, atol=1e-11)


def test_truncation_is_refused_where_it_has_no_meaning():
    with pytest.raises(ValueError, match="stationary games"):
        game = games.crowd_modelling(size=5, horizon=4)
        truncated_q_values(game, uniform_policy(game), uniform_policy(game), sweeps=3)
    with pytest.raises(ValueError, match="evaluation_sweeps must be an int >= 0"):
        MirrorDescent(evaluation_sweeps=-1)


# -------------------------------------------------------------------- policy iteration

def test_policy_iteration_solves_an_mdp_exactly():
    """Bench-MFG's no-interaction chain is an MDP: PI stops at the optimal policy."""
    game = games.make("benchmfg_no_interaction")
    assert float(exploitability(game, uniform_policy(game)).unregularized) > 1.0
    result = run(PolicyIteration(), game, 8)
    assert result.metrics["exploitability"][-1] == pytest.approx(0.0, abs=1e-10)
    assert float(exploitability(game, result.state.policy).unregularized) == pytest.approx(0.0, abs=1e-10)


def test_boltzmann_policy_iteration_stops_at_a_softmax_of_its_own_q():
    game = games.garnet(num_states=20, seed=6)
    result = run(PolicyIteration(softmax_temperature=2.0), game, 200)
    state = result.state
    q = policy_q_values(game, state.mean_field, state.policy)
    np.testing.assert_allclose(state.policy, jax.nn.softmax(q / 2.0, axis=-1), atol=1e-10)


@pytest.mark.parametrize("update", ["damped", "harmonic"])
def test_smooth_policy_iteration_carries_an_averaged_mean_field(update):
    game = games.garnet(num_states=20, seed=6)
    solver = PolicyIteration(softmax_temperature=2.0, mean_field_update=update, mean_field_damping=0.5)
    assert not solver.mean_field_is_induced
    result = run(solver, game, 200)
    np.testing.assert_allclose(result.state.mean_field.sum(), 1.0, atol=1e-12)
    residual = result.metrics["mean_field_residual"]         # the averaged L settles on L_pi
    assert residual[-1] < 0.02 * residual[0]


def test_policy_iteration_runs_on_a_finite_horizon():
    """OpenSpiel's Boltzmann policy iteration is finite-horizon: so is ours."""
    game = games.crowd_modelling(size=7, horizon=5)
    result = run(PolicyIteration(softmax_temperature=1.0), game, 5)
    assert np.all(np.isfinite(result.metrics["exploitability"]))
    assert result.state.mean_field_stats is None


def test_policy_iteration_options_are_checked():
    with pytest.raises(ValueError, match="mean_field_update must be one of"):
        PolicyIteration(mean_field_update="fictitious")
    with pytest.raises(ValueError, match="tie_break must be"):
        PolicyIteration(tie_break="random")


def test_a_yaml_mean_field_solve_is_checked_before_the_run():
    from experiments.parameters import check_solver_params

    assert check_solver_params("policy_iteration", {"mean_field_solve": {"damping": 0.5, "max_iterations": 100}}) == []
    assert check_solver_params("mirror_descent", {"mean_field_solve": {"damping": 2}}) == [
        "mean_field_solve: MeanFieldSolve.damping must lie in (0, 1], got 2."]
