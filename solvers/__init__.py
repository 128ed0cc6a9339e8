"""solvers: algorithms that compute mean-field equilibria, as init/step pairs.

``run(solver, game, num_iterations)`` drives any of them in jitted chunks with on-device
diagnostics.  ``SOLVERS`` maps names to solver classes.
"""

from solvers.base import Solver, SolverState, initial_state, random_policy
from solvers.driver import RunResult, diagnostics, fit_rate, init_state, run
from solvers.fictitious_play import FictitiousPlay
from solvers.fixed_point import FixedPoint
from solvers.mirror_descent import MirrorDescent
from solvers.nac import NaturalActorCritic
from solvers.neural_nac import NeuralActorCritic
from solvers.policy_iteration import PolicyIteration

SOLVERS = {
    "fixed_point": FixedPoint,
    "fictitious_play": FictitiousPlay,
    "mirror_descent": MirrorDescent,
    "policy_iteration": PolicyIteration,
    "nac": NaturalActorCritic,
    "neural_nac": NeuralActorCritic,
}

__all__ = [
    "SOLVERS",
    "Solver",
    "SolverState",
    "initial_state",
    "random_policy",
    "RunResult",
    "diagnostics",
    "fit_rate",
    "init_state",
    "run",
    "FictitiousPlay",
    "FixedPoint",
    "MirrorDescent",
    "NaturalActorCritic",
    "NeuralActorCritic",
    "PolicyIteration",
]
