"""What every solver shares: its state pytree, the init/step contract, policy helpers.

A solver is a frozen dataclass registered as a pytree: its numeric hyper-parameters
(learning rates, temperature, damping) are *data* fields, traced under ``jit``, so a sweep
over them (or ``vmap`` over a grid of them) never recompiles; its structural options
(tie-breaking rule, backup kind) are *static* fields.  It exposes

    init(game, policy=None, key=None) -> SolverState   (key: PRNG key of sampling solvers)
    step(game, state)  -> SolverState      (pure; jitted by the driver inside lax.scan)

and ``temperature`` (the regularization lambda its diagnostics report against).
Optionally a solver also defines

    mean_field_is_induced: bool   True (the default) when ``state.mean_field`` is always
                                  the mean field its policy induces (exact baselines), so
                                  diagnostics need not recompute it;
    step_diagnostics(game, old, new) -> dict of scalars   solver-specific diagnostics
                                  (critic errors, weight norms), computed on device.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from mfg.game import MeanFieldGame, uniform_policy
from mfg.oracles import MeanFieldSolve, mean_field_and_stats

__all__ = ["SolverState", "Solver", "initial_state", "random_policy", "pytree_dataclass",
           "coerce_mean_field_solve"]


def pytree_dataclass(cls=None, *, static: tuple[str, ...] = ()):
    """Frozen dataclass registered as a pytree; fields named in ``static`` are metadata."""

    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        cls._static_fields = tuple(static)
        names = [f.name for f in dataclasses.fields(cls)]
        return jax.tree_util.register_dataclass(
            cls,
            data_fields=[n for n in names if n not in static],
            meta_fields=[n for n in names if n in static],
        )

    return wrap if cls is None else wrap(cls)


@pytree_dataclass
class SolverState:
    """State shared by all solvers.

    Attributes:
      policy: ``game.policy_shape`` ([T, S, A] or [S, A]) current policy pi_k.
      mean_field: same shape, the state-action mean field L_k the solver carries.  For
        the exact baselines it is the mean field induced by pi_k.
      iteration: int32 scalar k.
      extra: solver-specific pytree (e.g. mirror descent's accumulated logits).
      mean_field_stats: ``MeanFieldStats`` of the stationary mean-field solve that gave
        ``mean_field`` (iterations, last change, converged), None for finite horizons
        and for solvers that carry another mean field.
    """

    policy: jax.Array
    mean_field: jax.Array
    iteration: jax.Array
    extra: Any = None
    mean_field_stats: Any = None


class Solver(Protocol):
    temperature: Any

    def init(self, game: MeanFieldGame, policy: jax.Array | None = None,
             key: jax.Array | None = None) -> SolverState: ...

    def step(self, game: MeanFieldGame, state: SolverState) -> SolverState: ...


def coerce_mean_field_solve(solver) -> None:
    """In a solver's ``__post_init__``: turn a mapping (YAML) or None given as
    ``mean_field_solve`` into a ``MeanFieldSolve`` (its own errors name the bad field)."""
    value = solver.mean_field_solve
    if not isinstance(value, MeanFieldSolve):
        object.__setattr__(solver, "mean_field_solve", MeanFieldSolve.of(value))


def initial_state(game: MeanFieldGame, policy: jax.Array | None, extra: Any = None,
                  solve: MeanFieldSolve | None = None) -> SolverState:
    """The state at iteration 0: ``policy`` (uniform by default) and its mean field
    (computed by ``solve``, from mu_0)."""
    policy = uniform_policy(game) if policy is None else jnp.asarray(policy, game.initial_distribution.dtype)
    if policy.shape != game.policy_shape:
        raise ValueError(
            f"initial policy must have shape {game.policy_shape} for game {game.name!r}, "
            f"got {policy.shape}."
        )
    mean_field, stats = mean_field_and_stats(game, policy, solve)
    return SolverState(
        policy=policy,
        mean_field=mean_field,
        iteration=jnp.zeros((), jnp.int32),
        extra=extra,
        mean_field_stats=stats,
    )


def random_policy(game: MeanFieldGame, key: jax.Array, concentration: float = 1.0) -> jax.Array:
    """A random policy (Dirichlet(concentration) per state and epoch), for seed studies."""
    dtype = game.initial_distribution.dtype
    alpha = jnp.full((game.num_actions,), concentration, dtype)
    return jax.random.dirichlet(key, alpha, shape=game.policy_shape[:-1], dtype=dtype)
