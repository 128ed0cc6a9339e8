"""A mean-field game as static sizes plus pure functions over arrays.

Notation (shared with docs/model.md):

* S states, A actions, a representative agent in state s taking action a;
* the mean field is the population's state-action distribution L in Delta(S x A), its
  state marginal mu(s) = sum_a L(s, a).  Games declare whether their reward and
  transition read L (``mean_field="state_action"``) or only mu (``mean_field="state"``);
  internally the library always carries L;
* ``reward_fn(params, t, m) -> [S, A]`` and ``transition_fn(params, t, m) -> Transition``
  with m = mu ([S]) or L ([S, A]), t an int32 scalar (traced inside scans);
* finite horizon: decision epochs t = 0 .. horizon-1, a reward at each, transitions
  between consecutive epochs; the policy is time-indexed [horizon, S, A] and the mean
  field is a flow [horizon, S, A] from the initial distribution mu_0;
* stationary discounted (``horizon=None``): discount gamma in (0, 1), a stationary policy
  [S, A] and a stationary mean field [S, A].

A ``MeanFieldGame`` is a pytree: ``initial_distribution``, ``discount`` and ``params`` are
its arrays (traced, so they can be vmapped or swept without recompiling), everything else
is static.  Build games with ``make_game``, which validates them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from mfg.transitions import ComposedTransition, DenseTransition, ShiftTransition, SparseTransition, Transition

__all__ = ["MeanFieldGame", "make_game", "GameValidationError", "uniform_policy", "state_marginal", "action_sum"]


# Action axes at most this long are summed column by column (see ``action_sum``).
ACTION_COLUMNS_MAX = 8


def action_sum(values: jax.Array) -> jax.Array:
    """sum_a values[..., a]: [..., A] -> [...].

    XLA:CPU compiles a reduction over a short minor axis into a slow loop that does not
    fuse with its neighbours (7x slower on crowd games at S = 10^6).  Up to
    ``ACTION_COLUMNS_MAX`` actions the sum is written as column adds, which fuse with the
    producer and the consumer (the 2D crowd's Bellman backup at 10^6 cells: 6% faster
    than a product with a ones vector); longer axes use that product.
    """
    num_actions = values.shape[-1]
    if num_actions > ACTION_COLUMNS_MAX:
        return values @ jnp.ones(num_actions, values.dtype)
    total = values[..., 0]
    for a in range(1, num_actions):
        total = total + values[..., a]
    return total


def action_max(values: jax.Array) -> jax.Array:
    """max_a values[..., a]: [..., A] -> [...], column by column for short action axes
    (the reason is ``action_sum``'s: on Lasry-Lions at 10^4 states a Bellman sweep's
    reduction over 3 actions took 380 us as a reduction and 13 us as columns)."""
    num_actions = values.shape[-1]
    if num_actions > ACTION_COLUMNS_MAX:
        return values.max(axis=-1)
    best = values[..., 0]
    for a in range(1, num_actions):
        best = jnp.maximum(best, values[..., a])
    return best


# Below this many rows a reduction over the action axis stays one reduce kernel: small
# games are launch-bound, and column adds there issue more kernels (MFGLib's 100-state
# beach bar, OMD step: 0.016 -> 0.08 ms).  From it on, column adds: XLA:CPU's minor-axis
# reduce is an unfused loop (381 us against 13 us a sweep on a 10^4-state chain; equal
# at 1,000 states).
COLUMN_REDUCTION_MIN_ROWS = 2048


def columns_pay(values: jax.Array) -> bool:
    """Static: is the action axis of ``values`` [..., A] better reduced as columns?"""
    return values.size // max(values.shape[-1], 1) >= COLUMN_REDUCTION_MIN_ROWS


def sum_over_actions(values: jax.Array) -> jax.Array:
    """sum over the last (action) axis, as one reduce or as columns, whichever is faster
    for its size (``columns_pay``)."""
    return action_sum(values) if columns_pay(values) else values.sum(axis=-1)


def max_over_actions(values: jax.Array) -> jax.Array:
    """max over the last (action) axis, sized like ``sum_over_actions``."""
    return action_max(values) if columns_pay(values) else values.max(axis=-1)


def state_marginal(joint: jax.Array) -> jax.Array:
    """mu(s) = sum_a L(s, a) for L [..., S, A]."""
    return action_sum(joint)


MeanFieldKind = Literal["state", "state_action"]


class GameValidationError(ValueError):
    """A game definition is malformed; the message names the field and what is allowed."""


@dataclasses.dataclass(frozen=True)
class MeanFieldGame:
    """Static description plus array parameters of a finite mean-field game.

    Attributes:
      name: a short identifier (for logs and exports).
      num_states: S.
      num_actions: A.
      horizon: number of decision epochs T, or None for a stationary discounted game.
      mean_field: "state" (functions read mu [S]) or "state_action" (they read L [S, A]).
      reward_fn: (params, t, m) -> [S, A] reward r(s, a, m) at epoch t.
      transition_fn: (params, t, m) -> Transition, the kernel P(s' | s, a, m) at epoch t.
      state_shape: the shape of the state grid (prod == S), for plots and features.
      initial_distribution: [S] mu_0.
      discount: scalar gamma; in (0, 1) for stationary games, in (0, 1] for finite ones.
      params: pytree of arrays read by ``reward_fn`` and ``transition_fn``.
    """

    name: str
    num_states: int
    num_actions: int
    horizon: int | None
    mean_field: MeanFieldKind
    reward_fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
    transition_fn: Callable[[Any, jax.Array, jax.Array], Transition]
    state_shape: tuple[int, ...]
    initial_distribution: jax.Array
    discount: jax.Array
    params: Any

    @property
    def is_finite_horizon(self) -> bool:
        return self.horizon is not None

    @property
    def policy_shape(self) -> tuple[int, ...]:
        """[T, S, A] for finite horizon, [S, A] for stationary games."""
        sa = (self.num_states, self.num_actions)
        return ((self.horizon,) + sa) if self.is_finite_horizon else sa

    def _view(self, joint: jax.Array) -> jax.Array:
        return state_marginal(joint) if self.mean_field == "state" else joint

    def reward(self, t: jax.Array, joint: jax.Array) -> jax.Array:
        """r(., ., L) at epoch t as [S, A], given the state-action mean field L [S, A]."""
        return self.reward_fn(self.params, t, self._view(joint))

    def transition(self, t: jax.Array, joint: jax.Array) -> Transition:
        """P(. | ., ., L) at epoch t, given the state-action mean field L [S, A]."""
        return self.transition_fn(self.params, t, self._view(joint))

    def replace(self, **changes) -> "MeanFieldGame":
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    MeanFieldGame,
    data_fields=["initial_distribution", "discount", "params"],
    meta_fields=[
        "name",
        "num_states",
        "num_actions",
        "horizon",
        "mean_field",
        "reward_fn",
        "transition_fn",
        "state_shape",
    ],
)


def uniform_policy(game: MeanFieldGame, dtype=None) -> jax.Array:
    """The uniform policy, shaped ``game.policy_shape``."""
    dtype = dtype or game.initial_distribution.dtype
    return jnp.full(game.policy_shape, 1.0 / game.num_actions, dtype=dtype)


def _check_distribution(name: str, values: np.ndarray, axis, atol: float) -> None:
    if not np.all(np.isfinite(values)):
        raise GameValidationError(f"{name} has non-finite entries (NaN or inf).")
    if values.size and values.min() < -atol:
        idx = np.unravel_index(np.argmin(values), values.shape)
        raise GameValidationError(
            f"{name} must be non-negative; entry {tuple(int(i) for i in idx)} is "
            f"{values.min():.3g}."
        )
    sums = values.sum(axis=axis)
    bad = np.abs(sums - 1.0) > atol
    if np.any(bad):
        idx = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
        raise GameValidationError(
            f"{name} must sum to 1; at index {tuple(int(i) for i in idx)} it sums to "
            f"{sums[idx]:.6g}."
        )


def _validate_transition(tr: Transition, S: int, A: int, atol: float, where: str) -> None:
    if isinstance(tr, DenseTransition):
        probs = np.asarray(tr.probs)
        if probs.shape != (S, A, S):
            raise GameValidationError(
                f"{where}: dense transition probs must have shape [S, A, S] = "
                f"{(S, A, S)}, got {probs.shape}."
            )
        _check_distribution(f"{where}: transition probs P(.|s,a)", probs, -1, atol)
    elif isinstance(tr, SparseTransition):
        nxt, probs = np.asarray(tr.next_state), np.asarray(tr.probs)
        if nxt.ndim != 3 or nxt.shape[:2] != (S, A) or probs.shape != nxt.shape:
            raise GameValidationError(
                f"{where}: sparse transition next_state and probs must both have shape "
                f"[S, A, K] with (S, A) = {(S, A)}; got {nxt.shape} and {probs.shape}."
            )
        if not np.issubdtype(nxt.dtype, np.integer):
            raise GameValidationError(f"{where}: next_state must be integer, got {nxt.dtype}.")
        if nxt.size and (nxt.min() < 0 or nxt.max() >= S):
            raise GameValidationError(
                f"{where}: next_state entries must lie in [0, {S}); found "
                f"[{nxt.min()}, {nxt.max()}]."
            )
        _check_distribution(f"{where}: transition probs P(.|s,a)", probs, -1, atol)
    elif isinstance(tr, ShiftTransition):
        probs = np.asarray(tr.probs)
        D = len(tr.offsets)
        if int(np.prod(tr.grid)) != S or any(len(o) != len(tr.grid) for o in tr.offsets):
            raise GameValidationError(
                f"{where}: shift transition grid {tr.grid} must have S = {S} cells and every "
                f"offset {len(tr.grid)} coordinates.")
        if probs.shape not in ((A, D), (S, A, D)):
            raise GameValidationError(
                f"{where}: shift transition probs must have shape [A, D] = {(A, D)} or "
                f"[S, A, D] = {(S, A, D)}, got {probs.shape}.")
        if tr.boundary not in ("torus", "clamp"):
            raise GameValidationError(
                f"{where}: shift boundary must be 'torus' or 'clamp', got {tr.boundary!r}.")
        _check_distribution(f"{where}: transition probs P(.|s,a)", probs, -1, atol)
    elif isinstance(tr, ComposedTransition):
        _validate_transition(tr.first, S, A, atol, f"{where} (first stage)")
        _validate_transition(tr.then, S, 1, atol, f"{where} (second stage, one action)")
    else:
        raise GameValidationError(
            f"{where}: transition_fn must return DenseTransition, SparseTransition, ShiftTransition or "
            f"ComposedTransition, got {type(tr).__name__}."
        )


def make_game(
    *,
    name: str,
    num_states: int,
    num_actions: int,
    reward_fn: Callable,
    transition_fn: Callable,
    initial_distribution,
    params: Any = None,
    horizon: int | None = None,
    discount: float | None = None,
    mean_field: MeanFieldKind = "state",
    state_shape: tuple[int, ...] | None = None,
    dtype: Any = None,
    validate: bool = True,
) -> MeanFieldGame:
    """Build and validate a game.

    Validation (on concrete values, before anything is traced): sizes positive; horizon a
    positive int or None; discount in (0, 1) for stationary games and in (0, 1] for
    finite-horizon ones (default 1); mu_0 of shape [S], non-negative, summing to 1; the
    reward of shape [S, A] and finite; the transition of the right shapes with
    non-negative rows summing to 1.  The functions are probed at t = 0 (and t = T-1) with
    the mean field of the uniform policy from mu_0.

    Args:
      dtype: float dtype of the arrays; defaults to float64 when jax_enable_x64 is on,
        else float32.  The library never flips that flag itself.
    Raises:
      GameValidationError: naming the offending field and the allowed values.
    """
    if not isinstance(num_states, (int, np.integer)) or num_states <= 0:
        raise GameValidationError(f"num_states must be a positive int, got {num_states!r}.")
    if not isinstance(num_actions, (int, np.integer)) or num_actions <= 0:
        raise GameValidationError(f"num_actions must be a positive int, got {num_actions!r}.")
    if mean_field not in ("state", "state_action"):
        raise GameValidationError(
            f"mean_field must be 'state' or 'state_action', got {mean_field!r}."
        )
    if horizon is not None and (not isinstance(horizon, (int, np.integer)) or horizon <= 0):
        raise GameValidationError(
            f"horizon must be a positive int (finite horizon) or None (stationary "
            f"discounted), got {horizon!r}."
        )
    if horizon is None:
        if discount is None or not (0.0 < float(discount) < 1.0):
            raise GameValidationError(
                f"discount must lie in (0, 1) for a stationary game (horizon=None), got "
                f"{discount!r}."
            )
    else:
        discount = 1.0 if discount is None else discount
        if not (0.0 < float(discount) <= 1.0):
            raise GameValidationError(
                f"discount must lie in (0, 1] for a finite-horizon game, got {discount!r}."
            )
    state_shape = tuple(state_shape) if state_shape is not None else (int(num_states),)
    if int(np.prod(state_shape)) != num_states:
        raise GameValidationError(
            f"state_shape {state_shape} has {int(np.prod(state_shape))} cells but "
            f"num_states is {num_states}."
        )
    dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    mu0 = np.asarray(initial_distribution, dtype=np.float64)
    if mu0.shape != (num_states,):
        raise GameValidationError(
            f"initial_distribution must have shape [S] = ({num_states},), got {mu0.shape}."
        )
    _check_distribution("initial_distribution", mu0, None, 1e-6)
    params = jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, dtype) if np.issubdtype(np.asarray(x).dtype, np.floating)
        else jnp.asarray(x),
        params,
    )
    game = MeanFieldGame(
        name=name,
        num_states=int(num_states),
        num_actions=int(num_actions),
        horizon=None if horizon is None else int(horizon),
        mean_field=mean_field,
        reward_fn=reward_fn,
        transition_fn=transition_fn,
        state_shape=state_shape,
        initial_distribution=jnp.asarray(mu0, dtype),
        discount=jnp.asarray(discount, dtype),
        params=params,
    )
    if validate:
        _probe(game, dtype)
    return game


def _probe(game: MeanFieldGame, dtype) -> None:
    S, A = game.num_states, game.num_actions
    joint = game.initial_distribution[:, None] * jnp.full((S, A), 1.0 / A, dtype)
    epochs = [0] if game.horizon is None else sorted({0, game.horizon - 1})
    atol = 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-9
    for t in epochs:
        where = f"{game.name} at t={t}"
        try:
            reward = np.asarray(game.reward(jnp.int32(t), joint))
            tr = game.transition(jnp.int32(t), joint)
        except GameValidationError:
            raise
        except Exception as err:  # a user function failed: say which and why
            raise GameValidationError(
                f"{where}: calling reward_fn/transition_fn failed with "
                f"{type(err).__name__}: {err}"
            ) from err
        if reward.shape != (S, A):
            raise GameValidationError(
                f"{where}: reward_fn must return shape [S, A] = {(S, A)}, got {reward.shape}."
            )
        if not np.all(np.isfinite(reward)):
            raise GameValidationError(f"{where}: reward_fn returned non-finite values.")
        _validate_transition(tr, S, A, atol, where)
