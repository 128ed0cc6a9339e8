"""Definitions shared by the exact and the sampled N-player evaluations.

The N-player game induced by a ``MeanFieldGame`` (docs/nplayer.md):

* N players with independent initial states: player 0 (the one whose value and
  deviations are measured) from mu_0, the others from nu (``others_start``): mu_0 for
  finite-horizon games, and for stationary games the stationary mean field of the
  policy pi they use, because the stationary MFG assumes the population is in its
  steady state from the start (that is the mean field its exploitability is measured
  against); with others from mu_0 the limit N -> infinity would be a population flowing
  from mu_0 instead, and eps_N would not tend to the stationary game's value;
* at epoch t every player i in state s_i draws an action a_i from its policy; the
  empirical mean field is that of *all* N players, the player itself included,

      m_N = (1/N) sum_i delta_{s_i}            (``mean_field="state"`` games)
      m_N = (1/N) sum_i delta_{(s_i, a_i)}     (``mean_field="state_action"`` games);

* player i receives r(s_i, a_i, m_N) and moves to s_i' ~ P(. | s_i, a_i, m_N),
  independently of the others given m_N.

Including the player itself keeps m_N(s_i) >= 1/N, so crowd-averse rewards
(-log mu(s)) stay finite, and makes N = 1 the single-agent MDP with reward
r(s, a, delta_s) and kernel P(. | s, a, delta_s).

The value of player 0 using pi_dev while players 1..N-1 use pi is

    J_N(pi_dev; pi) = E[ sum_t gamma^t ( r(s_t, a_t, m_N,t) - lambda log pi_dev(a_t | .) ) ],

and the N-player exploitability of pi is

    eps_N(pi) = sup_{pi'} J_N(pi'; pi) - J_N(pi; pi),

the sup over every policy of player 0 that sees the whole configuration (its state and
the others' counts).  As N grows, eps_N(pi) tends to the mean-field exploitability of pi.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.oracles import best_response, induced_mean_field, optimal_q_values

__all__ = ["marginal_game", "mean_field_best_response", "check_policy", "check_players", "others_start"]


def check_players(num_players, what: str = "num_players") -> int:
    """N as a positive int (not a bool), or a ValueError naming it."""
    if isinstance(num_players, bool) or not isinstance(num_players, (int, np.integer)) or num_players < 1:
        raise ValueError(f"{what} must be a positive int (the number of players N), got {num_players!r}.")
    return int(num_players)


def check_policy(game: MeanFieldGame, policy, what: str = "policy") -> np.ndarray:
    """The policy as a host array of ``game.policy_shape`` with rows on the simplex."""
    policy = np.asarray(policy, dtype=np.float64)
    if policy.shape != game.policy_shape:
        raise ValueError(f"{what} must have shape {game.policy_shape} (the game's policy shape), "
                         f"got {policy.shape}.")
    if not np.all(np.isfinite(policy)) or policy.min() < -1e-9:
        raise ValueError(f"{what} must be finite and non-negative.")
    worst = np.abs(policy.sum(-1) - 1.0).max()
    if worst > 1e-6:
        raise ValueError(f"{what} rows must sum to 1 over actions; the worst row is off by {worst:.3g}.")
    return policy


def others_start(game: MeanFieldGame, policy: jax.Array) -> jax.Array:
    """[S] law of the other players' initial states: mu_0 (finite horizon), or the
    stationary state marginal of ``policy`` (stationary games).  Jittable."""
    if game.is_finite_horizon:
        return game.initial_distribution.astype(policy.dtype)
    return induced_mean_field(game, policy).sum(-1)


def mean_field_best_response(game: MeanFieldGame, policy: jax.Array, temperature=0.0) -> jax.Array:
    """The (regularized) best response to the mean field that ``policy`` induces.

    The natural deviation of a single player from a mean-field policy: softmax(Q*(L_pi)/lambda)
    (argmax when lambda = 0), shaped ``game.policy_shape``.
    """
    policy = jnp.asarray(policy, game.initial_distribution.dtype)
    joint = induced_mean_field(game, policy)
    return best_response(optimal_q_values(game, joint, temperature), temperature)


def marginal_game(game: MeanFieldGame, *, probes: int = 4, seed: int = 0, rtol: float = 1e-9) -> MeanFieldGame:
    """A state-action game whose functions read only the state marginal, as a state game.

    Many games are declared ``mean_field="state_action"`` (MFGLib's convention) but read
    only mu(s) = sum_a L(s, a) (MFGLib's SIS, for one).  In the N-player game the actions
    of the others then do not matter, and the exact evaluation can run over state counts
    (S configurations per count vector instead of S A): far larger N.

    The wrapped functions call the originals with L = mu (x) uniform.  That the originals
    ignore the action split is the caller's claim; it is checked here on ``probes`` random
    pairs of state-action distributions with equal marginals (reward and kernel must agree
    to ``rtol``), and a game that fails is refused.
    """
    if game.mean_field == "state":
        return game
    S, A = game.num_states, game.num_actions
    rng = np.random.default_rng(seed)
    dtype = game.initial_distribution.dtype
    epochs = [0] if game.horizon is None else sorted({0, game.horizon - 1})
    from mfg.transitions import to_dense

    for _ in range(probes):
        mu = rng.dirichlet(np.ones(S))
        split_a, split_b = rng.dirichlet(np.ones(A), size=S), rng.dirichlet(np.ones(A), size=S)
        joint_a = jnp.asarray(mu[:, None] * split_a, dtype)
        joint_b = jnp.asarray(mu[:, None] * split_b, dtype)
        for t in epochs:
            t = jnp.int32(t)
            pairs = [(game.reward(t, joint_a), game.reward(t, joint_b)),
                     (to_dense(game.transition(t, joint_a), S).probs, to_dense(game.transition(t, joint_b), S).probs)]
            for what, (a, b) in zip(("reward", "transition"), pairs):
                a, b = np.asarray(a), np.asarray(b)
                if not np.allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(a).max())):
                    raise ValueError(
                        f"marginal_game: the {what} of {game.name!r} changes with the actions' split of the "
                        f"mean field (max difference {np.abs(a - b).max():.3g} between two state-action "
                        f"distributions with the same state marginal); it is a genuine state-action game.")
    reward_fn, transition_fn = game.reward_fn, game.transition_fn

    def as_joint(mu):
        return mu[:, None] * jnp.full((A,), 1.0 / A, mu.dtype)

    return make_game(
        name=f"{game.name}_marginal", num_states=S, num_actions=A, horizon=game.horizon,
        discount=float(game.discount),
        reward_fn=lambda p, t, mu: reward_fn(p, t, as_joint(mu)),
        transition_fn=lambda p, t, mu: transition_fn(p, t, as_joint(mu)),
        params=game.params, initial_distribution=np.asarray(game.initial_distribution),
        mean_field="state", state_shape=game.state_shape, dtype=dtype)
