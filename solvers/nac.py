"""Natural actor-critic for mean-field games (Mao et al., NeurIPS 2022, Algorithm 1).

Linear function approximation with features phi(s, a) (``mfg.features``):

  actor   pi_theta(a|s) = softmax_a( phi(s, a) . theta )
  critic  Q_w(s, a) = phi(s, a) . w, w kept in the ball ||w|| <= R_w

One iteration t, from (theta_t, w_hat_{t-1}, L_t):

1. critic: an estimate w_hat_t of the soft Q-function Q^{pi_t}_lambda(., .; L_t) of the
   MDP frozen at L_t, by one of two critics (``critic``, static):
   * "exact": exact soft policy evaluation, projected onto the features by weighted least
     squares under d_t = (1 - eps) L_t + eps / (S A) (``exploration`` eps keeps every
     pair weighted, so one-hot features recover Q exactly):
         w_hat = argmin_w sum_{s,a} d_t(s,a) (phi(s,a).w - Q(s,a))^2 + ridge ||w||^2;
   * "sampled": N agents (``num_agents``) simulated in parallel in the system frozen at
     L_t, K steps (``td_steps``) of pooled, projected soft TD(0) from the warm start
     w_hat_{t-1}, with a' ~ pi_t(.|s') (a fraction eps of the agents explore: they draw
     (s, a) uniformly at every step, so rarely visited pairs are still learnt):
         delta_i = r(s_i, a_i) + gamma (phi(s'_i, a'_i).w - lambda log pi_t(a'_i|s'_i)) - phi(s_i, a_i).w
         w <- Proj_{R_w}( w + alpha C^-1 mean_i delta_i phi(s_i, a_i) ),
     C = I (``preconditioner="none"``, the paper's update) or the diagonal of the batch's
     (1/N) sum_i phi(s_i, a_i) phi(s_i, a_i)^T ("diagonal", the default: a visited one-hot
     pair then moves by alpha times its mean TD error, however rarely it is visited),
     and w_hat_t the average of the K iterates.
2. actor, entropy-regularized natural policy gradient (the critic's weights are the
   natural gradient under compatible features):
         theta_{t+1} = (1 - eta lambda h) theta_t + eta h w_hat_t,   h = 1 / (1 - gamma)
   (tabular: pi_{t+1} proportional to pi_t^(1 - eta lambda h) exp(eta h Q)); requires
   eta lambda h <= 1.
3. mean field, smoothed on the slow time-scale beta_t = beta_0 / (t + 1)^nu:
         L_{t+1} = (1 - beta_t) L_t + beta_t Gamma_2(pi_{t+1}, L_t),
   with Gamma_2 exact (critic "exact") or, for "sampled", the agents' empirical state
   histogram over the K steps times pi_{t+1} (the (s, a) histogram with the action
   integrated out: same mean, less noise).

Horizons.  Stationary discounted games are the paper's setting.  Finite-horizon games
keep one weight vector per epoch (theta, w: [T, ...]); h = 1 (the horizon is explicit);
Gamma_2 of a flow is the parallel forward step mu_{t+1} = push(P_t(L_t), L_t) for all
t at once.  The sampled critic is implemented for stationary games only.

Outputs: the last iterate (``state.policy``) and the averaged iterate
``state.extra.average_policy`` (the running mean of pi_1..pi_t, the iterate the
finite-time analysis bounds).
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

from mfg.features import FeatureMap, OneHotFeatures
from mfg.game import MeanFieldGame, uniform_policy
from mfg.oracles import induced_mean_field, policy_q_values
from mfg.transitions import push_forward
from solvers.agents import (agent_step, draw_actions, explorer_mask, frozen_system, initial_agents,
                            population_histogram)
from solvers.base import SolverState, pytree_dataclass

__all__ = ["NaturalActorCritic", "NACExtra", "natural_actor_step", "smooth_mean_field", "sampling_keys",
           "mean_field_step_size", "project_to_ball"]


# ----------------------------------------------------------------- shared update rules

def natural_actor_step(theta: jax.Array, w_hat: jax.Array, learning_rate, temperature, horizon_scale):
    """theta <- (1 - eta lambda h) theta + eta h w_hat (the NPG step under compatible features)."""
    step = learning_rate * horizon_scale
    return (1 - step * temperature) * theta + step * w_hat


def sampling_keys(key: jax.Array, count: int) -> jax.Array:
    """``count`` keys for the agents' random numbers, drawn from ``key``.

    They use XLA's RngBitGenerator ("rbg"), seeded deterministically from ``key``: it
    makes uniforms about 1.5x faster than threefry on CPU, and random numbers are most
    of the cost of an agent step.
    """
    seeds = jax.random.bits(key, (count, 4), jnp.uint32)
    return jax.random.wrap_key_data(seeds, impl="rbg")


def project_to_ball(w: jax.Array, radius) -> jax.Array:
    """Euclidean projection onto {||w|| <= radius} (radius = inf: identity)."""
    norm = jnp.sqrt(jnp.sum(w * w))
    return w * jnp.minimum(1.0, radius / jnp.maximum(norm, jnp.finfo(w.dtype).tiny))


def mean_field_step_size(beta0, exponent, t):
    """beta_t = beta_0 / (t + 1)^nu."""
    return beta0 / (t + 1.0) ** exponent


def smooth_mean_field(old: jax.Array, target: jax.Array, beta) -> jax.Array:
    """(1 - beta) L + beta target."""
    return (1 - beta) * old + beta * target


def exact_population_step(game: MeanFieldGame, policy: jax.Array, joint: jax.Array) -> jax.Array:
    """Gamma_2(pi, L): one exact step of the population (a flow, for finite horizon)."""
    if game.is_finite_horizon:
        steps = jnp.arange(game.horizon - 1, dtype=jnp.int32)
        pushed = jax.vmap(lambda t, l: push_forward(game.transition(t, l), l))(steps, joint[:-1])
        mu = jnp.concatenate([game.initial_distribution.astype(joint.dtype)[None], pushed])
        return mu[..., None] * policy
    mu = push_forward(game.transition(jnp.int32(0), joint), joint)
    return mu[:, None] * policy


# ---------------------------------------------------------------------------- state

@pytree_dataclass
class NACExtra:
    """NAC-specific state.

    Attributes:
      theta: actor weights, ``features.weight_shape`` (with a leading [T] for finite horizon).
      critic: the last averaged critic w_hat (same shape), the TD warm start.
      average_policy: running mean of the policies pi_1..pi_t (``game.policy_shape``).
      key: PRNG key (sampled critic).
      agents: [N] int32 agent states (sampled critic; [0] otherwise).
      stats: scalars of the last step: td_error (mean squared TD error), critic_error and
        projection_error (d-weighted RMS errors against the exact Q^pi), weight_norm.
    """

    theta: jax.Array
    critic: jax.Array
    average_policy: jax.Array
    key: jax.Array
    agents: jax.Array
    stats: dict


def _weighted_rms(error: jax.Array, weights: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(weights * error * error) / jnp.sum(weights))


@pytree_dataclass(static=("critic", "num_agents", "td_steps", "preconditioner", "exact_diagnostics",
                          "population_steps"))
class NaturalActorCritic:
    """Algorithm 1 with linear features (see the module docstring for the maths).

    Attributes (numeric ones are traced: sweeps over them never recompile):
      features: the feature map phi (default: one-hot, i.e. tabular; pass any
        ``mfg.features`` map).
      learning_rate: actor step eta (> 0; eta lambda h <= 1).
      temperature: entropy regularization lambda (>= 0).
      mean_field_rate: beta_0 in (0, 1].
      mean_field_exponent: nu >= 0 in beta_t = beta_0 / (t+1)^nu (0: constant).
      critic_rate: TD step alpha (sampled critic).
      radius: critic ball radius R_w (inf: no projection).
      exploration: eps in the least-squares weights d = (1 - eps) L + eps / (S A); for
        the sampled critic, the fraction of agents that explore (the first round(eps N)).
      ridge: Tikhonov term of the least squares (>= 0).
      critic: "exact" or "sampled" (static).
      num_agents: N simulated agents (static; sampled critic).
      td_steps: K TD steps per iteration (static; sampled critic).
      preconditioner: "diagonal" scales each TD coordinate by 1 / (batch mean of phi_j^2)
        (per-pair averaging for one-hot features: every visited pair learns at rate alpha
        however rarely it is visited); "none" is the plain update of the paper (static).
      exact_diagnostics: also evaluate Q^pi exactly each iteration to report the
        critic's and the feature space's errors (static; tabular games).
      population_steps: m, exact push-forwards of the population per iteration (static;
        exact critic): Gamma_2 is applied m times with pi_{t+1} before smoothing.  m = 1
        is Algorithm 1; on a slowly mixing population a larger m keeps the carried mean
        field near the one the policy induces (docs/nac.md, "Slow mixing").
    """

    features: Any = None
    learning_rate: float = 0.01
    temperature: float = 1.0
    mean_field_rate: float = 0.05
    mean_field_exponent: float = 0.0
    critic_rate: float = 0.5
    radius: float = float("inf")
    exploration: float = 0.05
    ridge: float = 0.0
    critic: Literal["exact", "sampled"] = "exact"
    num_agents: int = 10_000
    td_steps: int = 10
    preconditioner: Literal["diagonal", "none"] = "diagonal"
    exact_diagnostics: bool = True
    population_steps: int = 1

    mean_field_is_induced = False

    def __post_init__(self):
        if self.critic not in ("exact", "sampled"):
            raise ValueError(f"critic must be 'exact' or 'sampled', got {self.critic!r}.")
        if self.critic == "sampled" and (int(self.num_agents) < 1 or int(self.td_steps) < 1):
            raise ValueError(f"num_agents and td_steps must be positive ints, got "
                             f"{self.num_agents} and {self.td_steps}.")
        if self.preconditioner not in ("diagonal", "none"):
            raise ValueError(f"preconditioner must be 'diagonal' or 'none', got {self.preconditioner!r}.")
        if not (isinstance(self.population_steps, int) and self.population_steps >= 1):
            raise ValueError(f"population_steps must be an int >= 1, got {self.population_steps!r}.")
        if self.critic == "sampled" and self.population_steps != 1:
            raise ValueError("population_steps > 1 needs the exact critic: the sampled critic's mean field is "
                             "its agents' empirical histogram.")

    # ------------------------------------------------------------------ helpers
    def _features(self, game: MeanFieldGame) -> FeatureMap:
        return OneHotFeatures(game.num_states, game.num_actions) if self.features is None else self.features

    def _horizon_scale(self, game: MeanFieldGame):
        return 1.0 if game.is_finite_horizon else 1.0 / (1.0 - game.discount)

    def _table(self, game, weights):
        """phi . weights on every (s, a) (and epoch): [S, A] or [T, S, A]."""
        table = self._features(game).table
        return jax.vmap(table)(weights) if game.is_finite_horizon else table(weights)

    def _policy(self, game, theta):
        return jax.nn.softmax(self._table(game, theta), axis=-1)

    def check(self, game: MeanFieldGame) -> None:
        """Raise a clear error if this solver cannot run on ``game`` (sizes, horizon, step)."""
        features = self._features(game)
        if isinstance(features, OneHotFeatures) and (features.num_states, features.num_actions) != (
                game.num_states, game.num_actions):
            raise ValueError(f"one-hot features are for S={features.num_states}, A={features.num_actions}; "
                             f"game {game.name!r} has S={game.num_states}, A={game.num_actions}.")
        if hasattr(features, "psi") and features.psi.shape[0] != game.num_states:
            raise ValueError(f"state features have {features.psi.shape[0]} rows; game {game.name!r} "
                             f"has S={game.num_states} states.")
        if hasattr(features, "phi") and features.phi.shape[:2] != (game.num_states, game.num_actions):
            raise ValueError(f"features phi have shape {features.phi.shape}; game {game.name!r} needs "
                             f"[S, A, d] = [{game.num_states}, {game.num_actions}, d].")
        if self.critic == "sampled" and game.is_finite_horizon:
            raise NotImplementedError(
                "the sampled critic is implemented for stationary discounted games (horizon=None); "
                f"game {game.name!r} has horizon {game.horizon}. Use critic='exact' or a stationary game.")
        try:
            scale = float(self._horizon_scale(game))
            eta, lam = float(self.learning_rate), float(self.temperature)
        except (TypeError, jax.errors.ConcretizationTypeError):
            return  # traced hyper-parameters: checked by the caller
        if eta <= 0 or lam < 0 or eta * lam * scale > 1 + 1e-12:
            raise ValueError(
                f"NAC needs learning_rate > 0, temperature >= 0 and learning_rate * temperature * h <= 1 "
                f"(h = 1/(1-gamma) = {scale:g}); got eta={eta}, lambda={lam} (product {eta * lam * scale:g}).")

    # -------------------------------------------------------------------- init
    def init(self, game: MeanFieldGame, policy: jax.Array | None = None, key: jax.Array | None = None) -> SolverState:
        """Start from theta = 0 (the uniform policy) or from the logits of ``policy``
        (exact for one-hot features), with L_0 = the mean field of that policy."""
        self.check(game)
        features = self._features(game)
        dtype = game.initial_distribution.dtype
        shape = ((game.horizon,) if game.is_finite_horizon else ()) + features.weight_shape
        theta = jnp.zeros(shape, dtype)
        if policy is not None:
            if not isinstance(features, OneHotFeatures):
                raise ValueError("an initial policy can only be given with one-hot features; "
                                 "start other feature maps from theta = 0 (uniform policy).")
            policy = jnp.asarray(policy, dtype)
            theta = jnp.log(jnp.maximum(policy, jnp.finfo(dtype).tiny))
            theta = theta - theta.max(-1, keepdims=True)
        pi = self._policy(game, theta) if policy is not None else uniform_policy(game)
        key = jax.random.key(0) if key is None else key
        key, agents_key = jax.random.split(key)
        agents = initial_agents(game, agents_key, self.num_agents if self.critic == "sampled" else 0)
        zero = jnp.zeros((), dtype)
        stats = {name: zero for name in self._stat_names()}
        extra = NACExtra(theta=theta, critic=jnp.zeros_like(theta), average_policy=pi, key=key,
                         agents=agents, stats=stats)
        return SolverState(pi, induced_mean_field(game, pi), jnp.zeros((), jnp.int32), extra)

    # -------------------------------------------------------------------- step
    def step(self, game: MeanFieldGame, state: SolverState) -> SolverState:
        extra: NACExtra = state.extra
        joint, policy = state.mean_field, state.policy
        if self.critic == "exact":
            w_hat, stats = self._exact_critic(game, joint, policy)
            agents, key, visits = extra.agents, extra.key, None
        else:
            w_hat, agents, key, visits, stats = self._sampled_critic(game, joint, policy, extra)
        theta = natural_actor_step(extra.theta, w_hat, self.learning_rate, self.temperature,
                                   self._horizon_scale(game))
        new_policy = self._policy(game, theta)
        beta = mean_field_step_size(self.mean_field_rate, self.mean_field_exponent, state.iteration)
        if visits is None:
            target = lax.fori_loop(0, self.population_steps,
                                   lambda _, l: exact_population_step(game, new_policy, l), joint)
        else:
            target = visits[:, None] * new_policy
        new_joint = smooth_mean_field(joint, target, beta)
        k = state.iteration + 1
        average = extra.average_policy + (new_policy - extra.average_policy) / k
        stats = {**stats, "weight_norm": jnp.sqrt(jnp.sum(w_hat * w_hat))}
        new_extra = NACExtra(theta, w_hat, average, key, agents, stats)
        return SolverState(new_policy, new_joint, k, new_extra)

    def _stat_names(self) -> tuple[str, ...]:
        names = ("weight_norm",)
        if self.critic == "sampled":
            names += ("td_error",)
        if self.critic == "exact" or self.exact_diagnostics:
            names += ("critic_error", "projection_error")
        return names

    def step_diagnostics(self, game, old: SolverState, new: SolverState) -> dict:
        """The step's critic diagnostics: weight_norm ||w_hat||; td_error (sampled critic:
        mean squared TD error); critic_error and projection_error (d-weighted RMS of
        Q_w - Q^pi and of the best fit in the feature space - Q^pi; equal for the exact
        critic; computed for the sampled one when ``exact_diagnostics``)."""
        return dict(new.extra.stats)

    # ---------------------------------------------------------------- critics
    def _least_squares_weights(self, joint: jax.Array) -> jax.Array:
        size = joint.shape[-1] * joint.shape[-2]
        total = joint.sum(axis=(-2, -1), keepdims=True)
        return (1 - self.exploration) * joint / total + self.exploration / size

    def _fit(self, game, q, weights):
        """Weighted least squares of q onto the features, per epoch for finite horizon."""
        features = self._features(game)
        fit = lambda q_t, d_t: project_to_ball(features.project(q_t, d_t, self.ridge), self.radius)
        return jax.vmap(fit)(q, weights) if game.is_finite_horizon else fit(q, weights)

    def _errors(self, game, q, weights, w):
        """(critic_error, projection_error): d-weighted RMS of (Q_w - Q) and of the best fit."""
        best = self._fit(game, q, weights)
        return _weighted_rms(self._table(game, w) - q, weights), _weighted_rms(self._table(game, best) - q, weights)

    def _exact_critic(self, game, joint, policy):
        q = policy_q_values(game, joint, policy, self.temperature)
        weights = self._least_squares_weights(joint)
        w_hat = self._fit(game, q, weights)
        error = _weighted_rms(self._table(game, w_hat) - q, weights)
        return w_hat, {"critic_error": error, "projection_error": error}

    def _sampled_critic(self, game, joint, policy, extra: NACExtra):
        """K steps of pooled soft TD(0) with N agents in the system frozen at L_t
        (explorers and population as in ``solvers.agents``)."""
        features = self._features(game)
        dtype = policy.dtype
        system = frozen_system(game, joint, policy)
        S, A, N = game.num_states, game.num_actions, self.num_agents
        explorer = explorer_mask(N, self.exploration)
        weights = self._least_squares_weights(joint)
        key, start_key, stream_key = jax.random.split(extra.key, 3)
        states = extra.agents
        actions = draw_actions(system.policy_cdf, states, jax.random.uniform(start_key, (N,), dtype))

        # With fewer pairs than agents, evaluate Q_w on the whole [S, A] table and sum the
        # TD direction per pair first (O(N + S A d) instead of O(N d) per step).
        via_table = S * A <= N

        def q_at(w, s, a):
            return features.table(w)[s, a] if via_table else features.at(w, s, a)

        def direction(delta, s, a):
            """(1/N) sum_i delta_i phi(s_i, a_i), preconditioned by C^-1."""
            pairs = s * A + a
            if via_table:
                per_pair = jax.ops.segment_sum(delta, pairs, num_segments=S * A).reshape(S, A)
                grad = features.pull_back(per_pair) / N
            else:
                grad = features.accumulate(delta, s, a) / N
            if self.preconditioner == "none":
                return grad
            # C = diag of the batch's (1/N) sum_i phi(s_i, a_i)^2: for one-hot features each
            # visited pair moves by alpha times its mean TD error (stable for alpha <= 1).
            counts = jax.ops.segment_sum(jnp.ones_like(delta), pairs, num_segments=S * A).reshape(S, A)
            moment = features.second_moment(counts / N)
            return jnp.where(moment > 0, grad / jnp.where(moment > 0, moment, 1), 0)

        def td_step(carry, step_key):
            w, w_sum, s, a = carry
            s, a, s_next, a_next = agent_step(system, explorer, s, a, jax.random.uniform(step_key, (3, N), dtype))
            target = system.reward[s, a] + game.discount * (
                q_at(w, s_next, a_next) - self.temperature * system.log_policy[s_next, a_next])
            delta = target - q_at(w, s, a)
            w = project_to_ball(w + self.critic_rate * direction(delta, s, a), self.radius)
            return (w, w_sum + w, s_next, a_next), (jnp.mean(delta * delta), s)

        init = (extra.critic, jnp.zeros_like(extra.critic), states, actions)
        (w, w_sum, states, _), (sq_errors, visited) = lax.scan(td_step, init, sampling_keys(stream_key, self.td_steps))
        w_hat = w_sum / self.td_steps
        visits = population_histogram(visited, explorer, S).astype(dtype)
        stats = {"td_error": jnp.mean(sq_errors)}
        if self.exact_diagnostics:
            q = policy_q_values(game, joint, policy, self.temperature)
            critic_error, projection_error = self._errors(game, q, weights, w_hat)
            stats.update(critic_error=critic_error, projection_error=projection_error)
        return w_hat, states, key, visits, stats
