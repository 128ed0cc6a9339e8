"""Sampled N-player evaluation for any size: N simulated players, with bounds on the deviation gain.

Each episode simulates two copies of the N-player game (``mfg.nplayer.game``) on common
random numbers:

* world A: every player uses the mean-field policy pi;
* world B: player 0 deviates, the others use pi, with the same uniforms as in world A.
  The deviation (``deviation``) is by default *adaptive*: at each step player 0 plays
  softmax((r(x, ., m_t) + gamma E[V_MF(x') | x, ., m_t]) / lambda) against the realized
  mean field m_t, V_MF the mean-field optimal soft value against pi's mean field: one
  step of policy improvement that reacts to the population's fluctuations (at an exact
  equilibrium it is pi whenever m_t equals the mean field).  It sees only the present,
  so it is a real deviation and its gain a valid lower bound.  The mean-field best
  response or any mean-field policy can be given instead.

From E episodes it estimates, with 95% normal intervals over episodes,

* the value J_N(pi; pi): per episode player 0's return in world A (and, as
  ``population_value``, the mean return of all N players there);
* a lower bound on the N-player exploitability, the deviation gain
  J_N(pi_dev; pi) - J_N(pi; pi): per episode player 0's return in B minus that in A;
* an upper bound (``hindsight=True``): a deviator that sees the realized population.
  Against the others' realized counts c_0..c_{T-1} of world A, player 0 solves its own
  MDP exactly (r(x, a, (e_x + c_t)/N), P(. | x, a, (e_x + c_t)/N), its own noise
  averaged) and the gain is V*_0(x_0) - V^pi_0(x_0) in that MDP, >= 0 episode by
  episode.  Knowing the others' future is more information than any deviator has, so
  this bounds the gain of every deviation *when the others' path does not depend on
  player 0*, which holds exactly when the kernel does not read the mean field (crowd
  modelling, Garnet, beach bar: rewards couple the players, kernels do not).  When the
  kernel reads the mean field (SIS, the serverless game), player 0's own state moves the
  others' kernels by O(1/N) and the bound holds only up to that; docs/nplayer.md.

Stationary games are simulated for ``horizon`` steps (default: until gamma^H <= 1e-4);
the truncation error of every return is at most gamma^H max|r - lambda log pi| / (1 - gamma),
reported as ``truncation_bound``.

One compilation serves every N of a sweep: the arrays are sized for the largest N and
the players past N are masked out (N is traced).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from mfg.game import MeanFieldGame
from mfg.nplayer.game import check_players, check_policy, mean_field_best_response, others_start
from mfg.oracles import best_response, induced_mean_field, optimal_q_values, policy_value, soft_value
from mfg.sampling import draw_actions, initial_agents
from mfg.transitions import expected_next, sample_next

__all__ = ["Estimate", "SampledExploitability", "sampled_exploitability", "default_horizon"]

Z95 = 1.959963984540054


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A Monte Carlo mean with its 95% normal interval: mean +- half_width over ``samples`` episodes."""

    mean: float
    half_width: float
    samples: int

    @classmethod
    def of(cls, values: np.ndarray) -> "Estimate":
        values = np.asarray(values, np.float64)
        spread = values.std(ddof=1) if values.size > 1 else math.inf
        return cls(float(values.mean()), float(Z95 * spread / math.sqrt(values.size)), int(values.size))

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def contains(self, value: float, slack: float = 0.0) -> bool:
        return self.low - slack <= value <= self.high + slack


@dataclasses.dataclass(frozen=True)
class SampledExploitability:
    """The sampled evaluation at one N (see the module docstring).

    Attributes:
      value: J_N(pi; pi), player 0's expected (regularized) return when all use pi.
      population_value: the mean return of all N players in an episode.  Finite-horizon
        games start every player from mu_0, so it estimates J_N(pi; pi) too, with about
        1/N of the variance; stationary games start the others from the stationary mean
        field, so it is their value, not player 0's.
      deviation: which deviation gave the lower bound: "adaptive", "best_response" or "policy".
      deviation_gain: J_N(pi_dev; pi) - J_N(pi; pi), a lower bound on eps_N(pi).
      hindsight_gain: the hindsight deviator's gain, an upper bound on eps_N(pi) (None
        when not computed).
      horizon: steps simulated; truncation_bound: the largest truncation error of a
        return (0 for finite-horizon games).
    """

    num_players: int
    deviation: str
    value: Estimate
    population_value: Estimate
    deviation_gain: Estimate
    hindsight_gain: Estimate | None
    horizon: int
    truncation_bound: float


def default_horizon(game: MeanFieldGame, tolerance: float = 1e-4) -> int:
    """The game's horizon, or for stationary games the H with gamma^H <= tolerance."""
    if game.is_finite_horizon:
        return game.horizon
    return int(math.ceil(math.log(tolerance) / math.log(float(game.discount))))


# Up to this many cells the counts are compare-and-sum passes over the players (vectorized)
# instead of a scatter-add, which XLA:CPU runs element by element.
_DENSE_COUNT_CELLS = 16


def _counts(cells, weight, num_cells):
    if num_cells <= _DENSE_COUNT_CELLS:
        return jnp.stack([jnp.sum(jnp.where(cells == c, weight, 0.0)) for c in range(num_cells)])
    return jax.ops.segment_sum(weight, cells, num_segments=num_cells)


def _mean_field(game, states, actions, active, num_players):
    """Empirical m_N of the active players: [S] counts / N, or [S, A] for state-action games."""
    S, A = game.num_states, game.num_actions
    weight = active.astype(game.initial_distribution.dtype) / num_players
    if game.mean_field == "state":
        return _counts(states, weight, S)
    return _counts(states * A + actions, weight, S * A).reshape(S, A)


def _own_view(game, others, x, a, num_players):
    """m_N with player 0 at (x, a) and the others' mass ``others`` (already divided by N)."""
    S, A = game.num_states, game.num_actions
    dtype = others.dtype
    if game.mean_field == "state":
        return others + jax.nn.one_hot(x, S, dtype=dtype) / num_players
    return others + jax.nn.one_hot(x * A + a, S * A, dtype=dtype).reshape(S, A) / num_players


def _hindsight_gain(game, policy, others_path, x0, temperature, num_players, horizon):
    """V*_0(x0) - V^pi_0(x0) in player 0's MDP against the others' realized path [H, S(, A)]."""
    S, A = game.num_states, game.num_actions
    dtype = others_path.dtype
    gamma = game.discount.astype(dtype)
    own_states = jnp.arange(S)

    def q_of(t, others, values):                  # values [2, S] -> Q [2, S, A]
        if game.mean_field == "state":
            def row(x):
                view = _own_view(game, others, x, 0, num_players)
                reward = game.reward_fn(game.params, t, view).astype(dtype)[x]
                tr = game.transition_fn(game.params, t, view)
                return reward[None] + gamma * jax.vmap(lambda v: expected_next(tr, v)[x])(values)
            return jnp.moveaxis(jax.vmap(row)(own_states), 0, 1)
        def pair(xa):
            x, a = xa // A, xa % A
            view = _own_view(game, others, x, a, num_players)
            reward = game.reward_fn(game.params, t, view).astype(dtype)[x, a]
            tr = game.transition_fn(game.params, t, view)
            return reward + gamma * jax.vmap(lambda v: expected_next(tr, v)[x, a])(values)
        return jax.vmap(pair)(jnp.arange(S * A)).T.reshape(2, S, A)

    def backward(values, inputs):
        t, others = inputs
        q = q_of(t, others, values)
        pi_t = policy[t] if game.is_finite_horizon else policy
        return jnp.stack([soft_value(q[0], temperature), policy_value(q[1], pi_t, temperature)]), None

    epochs = jnp.arange(horizon, dtype=jnp.int32)
    epochs = epochs if game.is_finite_horizon else jnp.zeros_like(epochs)
    values, _ = lax.scan(backward, jnp.zeros((2, S), dtype), (epochs, others_path), reverse=True)
    return values[0, x0] - values[1, x0]


def _episode(game, policy, deviation, lookahead, temperature, num_players, key, *, max_players, horizon,
             hindsight, adaptive):
    """One episode of worlds A and B: (mean return in A, player 0 in A, player 0 in B, hindsight gain)."""
    dtype = policy.dtype
    gamma = game.discount.astype(dtype)
    active = jnp.arange(max_players) < num_players
    key_init, key_run = jax.random.split(key)
    # Player 0 from mu_0, the others from nu (mfg.nplayer.game.others_start).
    others_game = game.replace(initial_distribution=others_start(game, policy))
    start = jnp.where(jnp.arange(max_players) == 0, initial_agents(game, key_init, max_players),
                      initial_agents(others_game, jax.random.fold_in(key_init, 1), max_players))
    states = jnp.stack([start, start])                                    # [2 worlds, N]
    tiny = jnp.finfo(dtype).tiny
    is_zero = jnp.arange(max_players) == 0

    def step(carry, t):
        states, returns, discount = carry
        pi_t = policy[t] if game.is_finite_horizon else policy
        epoch = t if game.is_finite_horizon else jnp.int32(0)
        u_action, u_next = jax.random.uniform(jax.random.fold_in(key_run, t), (2, max_players), dtype)
        cdf = jnp.cumsum(pi_t, -1)
        x0 = states[1, 0]

        def tables(states_w, actions_w):
            view = _mean_field(game, states_w, actions_w, active, num_players)
            return (view, game.reward_fn(game.params, epoch, view).astype(dtype),
                    game.transition_fn(game.params, epoch, view))

        # A state game's mean field is known before the actions: its tables serve both
        # the adaptive deviation and the step (one evaluation per world and step).
        before = jax.vmap(tables)(states, states) if game.mean_field == "state" else None
        if adaptive:
            # One-step improvement against the realized mean field of world B, with the
            # mean-field soft value after it.
            _, reward_b, transition_b = jax.tree_util.tree_map(lambda leaf: leaf[1], before)
            future = lookahead[t + 1] if game.is_finite_horizon else lookahead
            own = best_response(reward_b[x0] + gamma * expected_next(transition_b, future)[x0], temperature)
        else:
            own = (deviation[t] if game.is_finite_horizon else deviation)[x0]
        a0 = draw_actions(jnp.cumsum(own)[None], jnp.zeros((1,), jnp.int32), u_action[:1])[0]
        actions = jnp.stack([draw_actions(cdf, states[0], u_action),
                             draw_actions(cdf, states[1], u_action).at[0].set(a0)])
        view, reward, transition = before if before is not None else jax.vmap(tables)(states, actions)

        def world(states_w, actions_w, deviating, reward_w, transition_w):
            chosen = jnp.where(is_zero & deviating, own[actions_w], pi_t[states_w, actions_w])
            gained = reward_w[states_w, actions_w] - temperature * jnp.log(jnp.maximum(chosen, tiny))
            return gained, sample_next(transition_w, u_next, states_w, actions_w)

        rewards, nxt = jax.vmap(world)(states, actions, jnp.array([False, True]), reward, transition)
        # The others' part of world A's mean field, for the hindsight deviator.
        others = view[0] - _own_view(game, jnp.zeros_like(view[0]), states[0, 0], actions[0, 0], num_players)
        return (nxt, returns + discount * rewards, discount * gamma), others

    init = (states, jnp.zeros((2, max_players), dtype), jnp.ones((), dtype))
    (_, returns, _), others_path = lax.scan(step, init, jnp.arange(horizon, dtype=jnp.int32))
    mean_return = jnp.sum(jnp.where(active, returns[0], 0.0)) / num_players
    gain = (_hindsight_gain(game, policy, others_path, start[0], temperature, num_players, horizon)
            if hindsight else jnp.zeros((), dtype))
    return jnp.stack([mean_return, returns[0, 0], returns[1, 0], gain])


@functools.partial(jax.jit, static_argnames=("max_players", "horizon", "hindsight", "adaptive"))
def _episodes(game, policy, deviation, lookahead, temperature, num_players, keys, *, max_players, horizon,
              hindsight, adaptive):
    run = functools.partial(_episode, max_players=max_players, horizon=horizon, hindsight=hindsight,
                            adaptive=adaptive)
    return jax.vmap(lambda key: run(game, policy, deviation, lookahead, temperature, num_players, key))(keys)


def _lookahead_values(game, policy, temperature):
    """Mean-field soft optimal values against the mean field of ``policy``: [T + 1, S] (V_T = 0) or [S]."""
    q = optimal_q_values(game, induced_mean_field(game, policy), temperature)
    values = soft_value(q, temperature)
    if game.is_finite_horizon:
        values = jnp.concatenate([values, jnp.zeros((1, game.num_states), values.dtype)])
    return values


def sampled_exploitability(game: MeanFieldGame, policy: ArrayLike, sizes: int | Sequence[int], key: jax.Array, *,
                           episodes: int = 256, temperature: float = 0.0, deviation: str | ArrayLike | None = None,
                           hindsight: bool = True, horizon: int | None = None,
                           batch: int | None = None) -> list[SampledExploitability]:
    """The sampled N-player evaluation of ``policy`` at each N of ``sizes``.

    Args:
      game: any ``MeanFieldGame``.
      policy: the mean-field policy all players use, ``game.policy_shape``.
      sizes: an int N or a sequence of them; one compilation serves all.
      key: a ``jax.random.key``; episode e at size index i uses fold_in(fold_in(key, i), e).
      episodes: E, independent episodes per N (the intervals shrink like 1/sqrt(E)).
      temperature: lambda >= 0.
      deviation: player 0's deviation in world B, whose gain is the lower bound:
        ``"adaptive"`` (the default for state games): at each step the soft best
        response, against the realized mean field, of one step followed by the
        mean-field optimal value; ``"best_response"`` (the default for state-action
        games, whose realized mean field includes the others' current actions): the
        mean-field best response; or a mean-field policy array (``game.policy_shape``).
        At an exact mean-field equilibrium the mean-field best response is the policy
        itself (gain 0), while the adaptive deviation reacts to the population's
        fluctuations.
      hindsight: also compute the hindsight upper bound (costs S evaluations of the
        game's reward and kernel per step; off for large S).
      horizon: steps simulated for a stationary game (default ``default_horizon``).
      batch: episodes per jitted call (default: about 4 million player slots per call).
    """
    sizes = [check_players(n, "sizes") for n in ([sizes] if isinstance(sizes, (int, np.integer)) else list(sizes))]
    if not sizes:
        raise ValueError("sizes must name at least one number of players.")
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 2:
        raise ValueError(f"episodes must be an int >= 2 (intervals need two samples), got {episodes!r}.")
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}.")
    dtype = game.initial_distribution.dtype
    pi = jnp.asarray(check_policy(game, policy), dtype)
    if deviation is None:
        deviation = "adaptive" if game.mean_field == "state" else "best_response"
    adaptive = isinstance(deviation, str) and deviation == "adaptive"
    if adaptive and game.mean_field != "state":
        raise ValueError("deviation='adaptive' needs a state game (mean_field='state'): in a state-action game "
                         "the realized mean field includes the others' current actions; use 'best_response' "
                         "or a policy array (or mfg.nplayer.marginal_game).")
    if isinstance(deviation, str) and deviation not in ("adaptive", "best_response"):
        raise ValueError(f"deviation must be 'adaptive', 'best_response' or a policy array, got {deviation!r}.")
    if isinstance(deviation, str):
        dev = mean_field_best_response(game, pi, temperature)
    else:
        dev = jnp.asarray(check_policy(game, deviation, "deviation"), dtype)
    lookahead = _lookahead_values(game, pi, temperature) if adaptive else jnp.zeros((), dtype)
    if horizon is None:
        horizon = default_horizon(game)
    elif game.is_finite_horizon and horizon != game.horizon:
        raise ValueError(f"horizon is the game's own ({game.horizon}) for a finite-horizon game, got {horizon}.")
    horizon = check_players(horizon, "horizon")
    max_players = max(sizes)
    batch = batch or int(max(1, min(episodes, (1 << 22) // max_players)))
    truncation = 0.0
    if not game.is_finite_horizon:
        reward = np.asarray(game.reward(jnp.int32(0), game.initial_distribution[:, None] * pi))
        scale = np.abs(reward).max() + temperature * math.log(game.num_actions)
        gamma = float(game.discount)
        truncation = gamma ** horizon * scale / (1 - gamma)
    results = []
    for i, n in enumerate(sizes):
        size_key = jax.random.fold_in(key, i)
        keys = jax.vmap(lambda e: jax.random.fold_in(size_key, e))(jnp.arange(episodes))
        chunks = []
        for lo in range(0, episodes, batch):
            chunk = keys[lo:lo + batch]
            if chunk.shape[0] < batch:                        # keep one shape: pad, then drop
                chunk = jnp.concatenate([chunk, keys[: batch - chunk.shape[0]]])
            out = _episodes(game, pi, dev, lookahead, jnp.asarray(temperature, dtype), jnp.asarray(n, jnp.int32),
                            chunk, max_players=max_players, horizon=horizon, hindsight=hindsight, adaptive=adaptive)
            chunks.append(np.asarray(out)[: min(batch, episodes - lo)])
        samples = np.concatenate(chunks)
        results.append(SampledExploitability(
            num_players=n, deviation=deviation if isinstance(deviation, str) else "policy", value=Estimate.of(samples[:, 1]), population_value=Estimate.of(samples[:, 0]),
            deviation_gain=Estimate.of(samples[:, 2] - samples[:, 1]),
            hindsight_gain=Estimate.of(samples[:, 3]) if hindsight else None, horizon=horizon,
            truncation_bound=truncation))
    return results
