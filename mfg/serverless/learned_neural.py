"""The online NAC policy of ``mfg.serverless.learned`` with neural actor and critic (flax.nnx).

Everything but the approximator is the linear policy's: the observations, the actions,
the decisions every period, the normalized reward, exploration, the phases and their
``History``.  The network input is the observation vector o in [0, 1]^9 itself (mapped
to [-1, 1]); the networks learn their own features:

  critic  Q_w(o, .) = MLP_w(o) in R^A.  At every decision, ``critic_steps`` Adam steps on
          the semi-gradient soft TD loss over the N functions' transitions,
              mean_i (Q_w(o_i, a_i) - sg[r_i + gamma V(o'_i)])^2,
              V(o') = sum_a pi(a | o') (Q_w(o', a) - lambda log pi(a | o'));
  actor   pi_theta(. | o) = softmax(MLP_theta(o)).  At a phase's end, ``actor_steps`` Adam
          steps fit it to the natural (mirror-descent) target at the functions'
          observations, as ``solvers.neural_nac`` does on tabular games:
              target(. | o) proportional to pi_t(. | o)^(1 - eta lambda h) exp(eta h Q_w(o, .)),
          minimizing mean_i KL(target(. | o_i) || pi_theta(. | o_i)).

The MLPs are ``solvers.neural_nac.MLP`` (tanh hidden layers; the actor's output layer
starts at zero, so the first policy is uniform).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mfg.serverless.learned import ALL_OBSERVATIONS, OBSERVATIONS, OnlineNAC, TargetActions, _phase_zeros, policy_change
from solvers.neural_nac import _graphdef, _init_params

__all__ = ["NeuralOnlineNAC"]


class _NeuralLearner(NamedTuple):
    actor: nnx.State
    critic: nnx.State
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    steps: jax.Array
    td_sum: jax.Array
    totals: jax.Array
    pressure_sum: jax.Array
    ticks: jax.Array


_DATA = ["theta", "critic", "value", "service_mean", "slo", "price", "discount", "temperature", "critic_rate",
         "actor_rate", "exploration", "radius", "day_start", "congestion_price", "memory_seconds"]
_META = ["actions", "features", "config", "decision_period", "actor_every", "learning", "greedy", "dt",
         "max_containers", "history", "backlog_shaping", "memory", "hidden", "critic_steps", "actor_steps",
         "actor_optimizer_rate"]


@functools.partial(jax.tree_util.register_dataclass, data_fields=_DATA, meta_fields=_META)
@dataclasses.dataclass(frozen=True)
class NeuralOnlineNAC(OnlineNAC):
    """``OnlineNAC`` with MLP actor and critic (module docstring).

    Attributes (besides ``OnlineNAC``'s; ``theta`` and ``critic`` hold the two networks'
    parameters, ``value`` is unused):
      hidden: hidden layer widths of both networks.
      critic_steps: Adam steps of the critic per decision; ``critic_rate`` its step size.
      actor_steps: Adam steps of the actor's fit per phase; ``actor_optimizer_rate`` its
        step size (``actor_rate`` stays eta of the natural step).
    """

    critic_rate: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    critic_steps: int = 2
    actor_steps: int = 20
    actor_optimizer_rate: float = 3e-3

    @classmethod
    def untrained(cls, service_mean, slo, key: int = 0, **kwargs) -> "NeuralOnlineNAC":
        """Fresh networks (the actor's output at zero: the uniform policy), learning on."""
        actions = kwargs.get("actions", TargetActions())
        hidden = tuple(kwargs.get("hidden", (64, 64)))
        actor_key, critic_key = jax.random.split(jax.random.key(key))
        d = len(ALL_OBSERVATIONS) if kwargs.get("memory", False) else len(OBSERVATIONS)
        actor = _init_params(actor_key, d, actions.num_actions, hidden, jnp.float32, zero_output=True)
        critic = _init_params(critic_key, d, actions.num_actions, hidden, jnp.float32)
        policy = cls(actor, critic, jnp.zeros((1,), jnp.float32), jnp.asarray(service_mean, jnp.float32),
                     jnp.asarray(slo, jnp.float32), **{**kwargs, "hidden": hidden})
        policy.check()
        return policy

    def check(self) -> None:
        for name, value in (("critic_steps", self.critic_steps), ("actor_steps", self.actor_steps)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"NeuralOnlineNAC.{name} must be an int >= 1, got {value!r}")
        if not (self.actor_optimizer_rate > 0) or not all(isinstance(h, int) and h >= 1 for h in self.hidden):
            raise ValueError(f"NeuralOnlineNAC needs actor_optimizer_rate > 0 and hidden widths >= 1, got "
                             f"{self.actor_optimizer_rate!r}, {self.hidden!r}")
        super().check()

    def _check_shapes(self) -> None:
        """The networks' shapes come from ``untrained``; nothing to check here."""

    def _check_memory(self) -> None:
        """The networks read every observation there is (the memory too, with ``memory``)."""

    def learned(self, state) -> "NeuralOnlineNAC":
        learner = state[0]
        return dataclasses.replace(self, theta=learner.actor, critic=learner.critic)

    # ------------------------------------------------------------ the approximator

    @property
    def _graph(self):
        return _graphdef(self._num_observations, self.actions.num_actions, tuple(self.hidden), "float32")

    @property
    def _input_size(self) -> int:
        return self._num_observations

    def _inputs(self, obs, arrived):
        return 2.0 * obs - 1.0

    def _optimizers(self):
        return optax.adam(self.actor_optimizer_rate), optax.adam(self.critic_rate)

    def _initial_learner(self):
        actor_opt, critic_opt = self._optimizers()
        return _NeuralLearner(self.theta, self.critic, actor_opt.init(self.theta), critic_opt.init(self.critic),
                              *_phase_zeros())

    def _logits(self, learner, x):
        return nnx.merge(self._graph, learner.actor)(x)

    def _learn(self, learner, history, memory, decisions, x, pi, log_pi, arrivals_total):
        gamma, lam, graph = self.discount, self.temperature, self._graph
        n = x.shape[0]
        actor_opt, critic_opt = self._optimizers()
        reward = self._reward(memory, decisions, arrivals_total)
        q_next = nnx.merge(graph, learner.critic)(x)
        target = jax.lax.stop_gradient(reward + gamma * jnp.sum(pi * (q_next - lam * log_pi), axis=1))
        valid = (decisions > 0).astype(x.dtype)
        rows = jnp.arange(n)

        def td_loss(params):
            q = nnx.merge(graph, params)(memory.phi)[rows, memory.action]
            return jnp.mean((q - target) ** 2) * valid

        first = td_loss(learner.critic)

        def critic_step(_, carry):
            params, opt = carry
            grads = jax.grad(td_loss)(params)
            updates, opt = critic_opt.update(grads, opt, params)
            return optax.apply_updates(params, updates), opt

        critic, opt = jax.lax.fori_loop(0, self.critic_steps, critic_step, (learner.critic, learner.critic_opt))
        learner = learner._replace(critic=critic, critic_opt=opt, steps=learner.steps + valid.astype(jnp.int32),
                                   td_sum=learner.td_sum + first)

        def actor(operands):
            learner, history = operands
            step = self.actor_rate / (1.0 - gamma)
            q = nnx.merge(graph, learner.critic)(x)
            goal = jax.nn.softmax((1.0 - step * lam) * log_pi + step * q, axis=1)

            def kl(params):
                log_new = jax.nn.log_softmax(nnx.merge(graph, params)(x), axis=1)
                return jnp.mean(jnp.sum(goal * (jnp.log(jnp.maximum(goal, 1e-30)) - log_new), axis=1))

            def fit(_, carry):
                params, opt = carry
                updates, opt = actor_opt.update(jax.grad(kl)(params), opt, params)
                return optax.apply_updates(params, updates), opt

            params, opt = jax.lax.fori_loop(0, self.actor_steps, fit, (learner.actor, learner.actor_opt))
            change, entropy = policy_change(pi, jax.nn.softmax(nnx.merge(graph, params)(x), axis=1))
            learner = learner._replace(actor=params, actor_opt=opt)
            return self._close_phase(learner, history, change, entropy, n)

        return self._at_phase_end(decisions, actor, learner, history)
