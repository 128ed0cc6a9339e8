"""Neural natural actor-critic for MFGs: Algorithm 1 with MLP actor and critic (flax.nnx).

Same outer loop as the linear algorithm (``solvers.nac``); the two approximators change:

  critic  Q_w(s, .) = MLP_w(x(s)) in R^A, trained on the soft TD target
  actor   pi_theta(.|s) = softmax(MLP_theta(x(s)))

with x(s) the network input of state s (one-hot by default for S <= 1024, else the
normalized grid coordinates; any [S, d_in] array may be given).

Critic, per iteration (``critic``, static):
* "exact": ``critic_steps`` Adam steps of full-batch regression of Q_w onto the exact
  soft Q^{pi_t}_lambda(L_t), weighted by d = (1 - eps) L_t + eps / (S A);
* "sampled": N agents in the system frozen at L_t (explorers and population as in the
  linear sampled critic); each of the K steps is one Adam step on the semi-gradient soft
  TD loss mean_i (Q_w(s_i, a_i) - sg[r_i + gamma (Q_w(s'_i, a'_i) - lambda log pi_t(a'_i|s'_i))])^2.

Actor: the natural step.  In the tabular case NPG is exactly the mirror-descent update

    pi_{t+1}(.|s) proportional to pi_t(.|s)^(1 - eta lambda h) exp(eta h Q_w(s, .)),  h = 1/(1-gamma),

so the actor is fitted to that target by ``actor_steps`` Adam steps on the KL-regularized
policy mirror-descent objective E_{s ~ d} KL(target(.|s) || pi_theta(.|s)) (Tomar et al.
2022, "Mirror descent policy optimization"; Vaswani et al. 2022).  We chose this over
the compatible-feature least squares on the actor's last layer because it trains the
whole network (the last-layer step would leave the body as fixed random features), and
with an expressive network it reduces to the exact natural step.  States d: every state
weighted by (1 - eps) mu_t + eps / S ("exact"), or the states the agents visited in the
iteration's last TD step ("sampled").

Mean field: as in the linear algorithm (exact Gamma_2 or the agents' histogram).
Stationary discounted games only.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from mfg.features import normalized_state_coordinates
from mfg.game import MeanFieldGame
from mfg.oracles import induced_mean_field, policy_q_values
from solvers.agents import (agent_step, draw_actions, explorer_mask, frozen_system, initial_agents,
                            population_histogram)
from solvers.base import SolverState, pytree_dataclass
from solvers.nac import exact_population_step, mean_field_step_size, sampling_keys, smooth_mean_field

__all__ = ["MLP", "NeuralActorCritic", "NeuralNACExtra", "default_inputs"]


class MLP(nnx.Module):
    """x [..., d_in] -> [..., d_out]: tanh hidden layers, linear output."""

    def __init__(self, d_in: int, d_out: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs, dtype=jnp.float32,
                 zero_output: bool = False):
        sizes = (d_in,) + tuple(hidden)
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs, param_dtype=dtype, dtype=dtype)
                                for a, b in zip(sizes[:-1], sizes[1:])])
        init = nnx.initializers.zeros_init() if zero_output else nnx.initializers.lecun_normal()
        self.out = nnx.Linear(sizes[-1], d_out, rngs=rngs, param_dtype=dtype, dtype=dtype, kernel_init=init)

    def __call__(self, x):
        for layer in self.hidden:
            x = jnp.tanh(layer(x))
        return self.out(x)


@functools.lru_cache(maxsize=None)
def _graphdef(d_in: int, d_out: int, hidden: tuple[int, ...], dtype_name: str):
    abstract = nnx.eval_shape(lambda: MLP(d_in, d_out, hidden, rngs=nnx.Rngs(0), dtype=jnp.dtype(dtype_name)))
    return nnx.split(abstract)[0]


def _init_params(key, d_in, d_out, hidden, dtype, zero_output=False):
    return nnx.split(MLP(d_in, d_out, hidden, rngs=nnx.Rngs(params=key), dtype=dtype, zero_output=zero_output))[1]


def default_inputs(game: MeanFieldGame) -> jax.Array:
    """x(s): one-hot states for S <= 1024, else normalized grid coordinates ([S, d_in])."""
    dtype = game.initial_distribution.dtype
    if game.num_states <= 1024:
        return jnp.eye(game.num_states, dtype=dtype)
    return jnp.asarray(normalized_state_coordinates(game), dtype)


@pytree_dataclass
class NeuralNACExtra:
    """actor/critic: nnx parameter states; *_opt: optax states; key; agents [N]; stats."""

    actor: Any
    critic: Any
    actor_opt: Any
    critic_opt: Any
    key: jax.Array
    agents: jax.Array
    stats: dict


@pytree_dataclass(static=("hidden", "critic", "num_agents", "td_steps", "critic_steps", "actor_steps",
                          "critic_optimizer_rate", "actor_optimizer_rate"))
class NeuralActorCritic:
    """Neural Algorithm 1 (see the module docstring).

    Attributes:
      inputs: [S, d_in] network inputs x(s) (None: ``default_inputs``).
      learning_rate, temperature, mean_field_rate, mean_field_exponent, exploration: as in
        ``NaturalActorCritic`` (eta, lambda, beta_0, nu, eps).
      hidden: hidden layer sizes of both MLPs (static).
      critic: "exact" or "sampled" (static).
      num_agents, td_steps: N and K of the sampled critic (static).
      critic_steps: Adam steps of the exact critic's regression per iteration (static).
      actor_steps: Adam steps of the actor's mirror-descent fit per iteration (static).
      critic_optimizer_rate, actor_optimizer_rate: Adam step sizes (static: they live in
        the optimizer's closure).
    """

    inputs: Any = None
    learning_rate: float = 0.01
    temperature: float = 1.0
    mean_field_rate: float = 0.05
    mean_field_exponent: float = 0.0
    exploration: float = 0.05
    hidden: tuple[int, ...] = (64, 64)
    critic: Literal["exact", "sampled"] = "exact"
    num_agents: int = 10_000
    td_steps: int = 10
    critic_steps: int = 50
    actor_steps: int = 50
    critic_optimizer_rate: float = 1e-2
    actor_optimizer_rate: float = 1e-2

    mean_field_is_induced = False

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))  # static: hashable
        if self.critic not in ("exact", "sampled"):
            raise ValueError(f"critic must be 'exact' or 'sampled', got {self.critic!r}.")
        for name in ("num_agents", "td_steps", "critic_steps", "actor_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}.")

    # ---------------------------------------------------------------- helpers
    def _inputs(self, game):
        return default_inputs(game) if self.inputs is None else jnp.asarray(self.inputs)

    def _nets(self, game):
        x = self._inputs(game)
        name = jnp.dtype(game.initial_distribution.dtype).name
        graph = _graphdef(x.shape[1], game.num_actions, tuple(self.hidden), name)
        return x, graph

    def _optimizers(self):
        return optax.adam(self.actor_optimizer_rate), optax.adam(self.critic_optimizer_rate)

    def _horizon_scale(self, game):
        return 1.0 / (1.0 - game.discount)

    # -------------------------------------------------------------------- init
    def init(self, game: MeanFieldGame, policy=None, key=None) -> SolverState:
        if game.is_finite_horizon:
            raise NotImplementedError(
                f"NeuralActorCritic is for stationary discounted games (horizon=None); game {game.name!r} "
                f"has horizon {game.horizon}. Use NaturalActorCritic(critic='exact') for finite horizons.")
        if policy is not None:
            raise ValueError("NeuralActorCritic starts from the uniform policy (zero actor output layer); "
                             "an initial policy table cannot be given.")
        x = self._inputs(game)
        if x.ndim != 2 or x.shape[0] != game.num_states:
            raise ValueError(f"inputs must have shape [S, d_in] with S = {game.num_states}, got {x.shape}.")
        dtype = game.initial_distribution.dtype
        key = jax.random.key(0) if key is None else key
        key, actor_key, critic_key, agents_key = jax.random.split(key, 4)
        actor = _init_params(actor_key, x.shape[1], game.num_actions, tuple(self.hidden), dtype, zero_output=True)
        critic = _init_params(critic_key, x.shape[1], game.num_actions, tuple(self.hidden), dtype)
        actor_optimizer, critic_optimizer = self._optimizers()
        agents = initial_agents(game, agents_key, self.num_agents if self.critic == "sampled" else 0)
        zero = jnp.zeros((), dtype)
        stats = {name: zero for name in self._stat_names()}
        extra = NeuralNACExtra(actor, critic, actor_optimizer.init(actor), critic_optimizer.init(critic), key,
                               agents, stats)
        policy = self._policy_table(game, actor)
        return SolverState(policy, induced_mean_field(game, policy), jnp.zeros((), jnp.int32), extra)

    def _policy_table(self, game, actor_params):
        x, graph = self._nets(game)
        return jax.nn.softmax(nnx.merge(graph, actor_params)(x), axis=-1)

    # -------------------------------------------------------------------- step
    def step(self, game: MeanFieldGame, state: SolverState) -> SolverState:
        extra: NeuralNACExtra = state.extra
        x, graph = self._nets(game)
        joint, policy = state.mean_field, state.policy
        dtype = policy.dtype
        S, A = game.num_states, game.num_actions
        weights = (1 - self.exploration) * joint / joint.sum() + self.exploration / (S * A)
        q_exact = policy_q_values(game, joint, policy, self.temperature)
        actor_optimizer, critic_optimizer = self._optimizers()

        if self.critic == "exact":
            def loss(params):
                error = nnx.merge(graph, params)(x) - q_exact
                return jnp.sum(weights * error * error) / jnp.sum(weights)

            critic, critic_opt = _adam_fit(loss, extra.critic, extra.critic_opt, critic_optimizer, self.critic_steps)
            agents, key, visits = extra.agents, extra.key, None
            actor_states = None
            td_error = None
        else:
            critic, critic_opt, agents, key, visits, actor_states, td_error = self._sampled_critic(
                game, graph, x, joint, policy, extra, critic_optimizer)

        q_critic = nnx.merge(graph, critic)(x)
        critic_error = jnp.sqrt(jnp.sum(weights * (q_critic - q_exact) ** 2) / jnp.sum(weights))

        # Actor: fit pi_theta to pi_t^(1 - eta lambda h) exp(eta h Q_w) (mirror-descent step).
        step = self.learning_rate * self._horizon_scale(game)
        old_logits = nnx.merge(graph, extra.actor)(x)
        target = jax.nn.softmax((1 - step * self.temperature) * old_logits + step * q_critic, axis=-1)
        if actor_states is None:
            state_weights = (1 - self.exploration) * joint.sum(-1) / joint.sum() + self.exploration / S
        else:
            state_weights = jax.ops.segment_sum(jnp.ones(actor_states.shape, dtype), actor_states, num_segments=S)
            state_weights = state_weights / state_weights.sum()

        def kl(params):
            log_pi = jax.nn.log_softmax(nnx.merge(graph, params)(x), axis=-1)
            per_state = jnp.sum(jax.scipy.special.xlogy(target, target) - target * log_pi, axis=-1)
            return jnp.sum(state_weights * per_state)

        actor, actor_opt = _adam_fit(kl, extra.actor, extra.actor_opt, actor_optimizer, self.actor_steps)
        new_policy = self._policy_table(game, actor)
        beta = mean_field_step_size(self.mean_field_rate, self.mean_field_exponent, state.iteration)
        target_joint = (exact_population_step(game, new_policy, joint) if visits is None
                        else visits[:, None] * new_policy)
        new_joint = smooth_mean_field(joint, target_joint, beta)
        stats = {"critic_error": critic_error, "actor_kl_fit": kl(actor)}
        if td_error is not None:
            stats["td_error"] = td_error
        new_extra = NeuralNACExtra(actor, critic, actor_opt, critic_opt, key, agents, stats)
        return SolverState(new_policy, new_joint, state.iteration + 1, new_extra)

    def _stat_names(self) -> tuple[str, ...]:
        return ("critic_error", "actor_kl_fit") + (("td_error",) if self.critic == "sampled" else ())

    def step_diagnostics(self, game, old: SolverState, new: SolverState) -> dict:
        """critic_error (d-weighted RMS of Q_w - Q^pi), actor_kl_fit (the KL left after
        fitting the actor to its mirror-descent target), td_error (sampled critic)."""
        return dict(new.extra.stats)

    def _sampled_critic(self, game, graph, x, joint, policy, extra, critic_optimizer):
        """K semi-gradient soft-TD Adam steps on the agents' transitions (``solvers.agents``)."""
        dtype = policy.dtype
        system = frozen_system(game, joint, policy)
        S, N = game.num_states, self.num_agents
        explorer = explorer_mask(N, self.exploration)
        key, start_key, stream_key = jax.random.split(extra.key, 3)
        actions = draw_actions(system.policy_cdf, extra.agents, jax.random.uniform(start_key, (N,), dtype))

        def td_step(carry, step_key):
            params, opt, s, a = carry
            s, a, s_next, a_next = agent_step(system, explorer, s, a, jax.random.uniform(step_key, (3, N), dtype))
            q_next = nnx.merge(graph, params)(x[s_next])[jnp.arange(N), a_next]
            target = lax.stop_gradient(
                system.reward[s, a] + game.discount * (q_next - self.temperature * system.log_policy[s_next, a_next]))

            def loss(p):
                delta = nnx.merge(graph, p)(x[s])[jnp.arange(N), a] - target
                return jnp.mean(delta * delta)

            value, grads = jax.value_and_grad(loss)(params)
            updates, opt = critic_optimizer.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt, s_next, a_next), (value, s)

        (critic, critic_opt, agents, _), (losses, visited) = lax.scan(
            td_step, (extra.critic, extra.critic_opt, extra.agents, actions), sampling_keys(stream_key, self.td_steps))
        visits = population_histogram(visited, explorer, S).astype(dtype)
        return critic, critic_opt, agents, key, visits, visited[-1], jnp.mean(losses)


def _adam_fit(loss, params, opt_state, optimizer, steps: int):
    """``steps`` optimizer steps on ``loss(params)`` inside one lax.scan; (params, opt_state)."""
    def one(carry, _):
        params, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(loss)(params), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = lax.scan(one, (params, opt_state), None, length=steps)
    return params, opt_state
