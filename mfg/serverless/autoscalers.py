"""Autoscaling policies over the particle simulator: today's baselines and tabular MFG policies.

Every policy is a pytree (its knobs are arrays, so a knob sweep or a new seed reuses one
compilation) with

    init(num_functions, key) -> state
    decide(state, observation, key) -> (Decision, state)

where ``observation`` is a ``mfg.serverless.particles.Observation`` and ``Decision`` the target
containers and CPU steps of every function (targets, not deltas: the simulator clamps
them to the model's bounds).

* ``StaticPolicy``: fixed containers and CPU (the platform default; knob: the size).
* ``HorizontalAutoscaler``: the Kubernetes HPA rule, desired = ceil(n * util / target)
  unless |util / target - 1| <= tolerance (0.1), scale-down stabilization over the last
  ``stabilization_steps`` recommendations (300 s by default), scale-up immediate; CPU per
  container fixed (knob: target utilization).
* ``ConcurrencyAutoscaler``: the Knative KPA rule, desired = ceil(concurrency /
  target) with the concurrency averaged over the stable window; when the panic-window
  estimate reaches ``panic_threshold`` x the current size it scales up at once and does
  not scale down until a stable window has passed (knob: target concurrency per container).
  At the trace's one-minute resolution the stable window (60 s) is one step and the
  panic window (6 s) is approximated by the current minute.
* ``QLearningAutoscaler``: per-function tabular Q-learning of the KPA's concurrency target
  (state: load bin; action: one of ``targets``), as in the Knative RL study of Schuler,
  Jamil and Kuhl (CCGrid 2021); it learns online from the simulator's reward.
* ``TabularPolicy``: a policy of the tabular serverless game (an MFG equilibrium, or an
  independently trained one) applied to each particle's discretized state.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mfg.serverless.game import apply_moves, load_bin, state_index
from mfg.serverless.particles import Decision, Observation

__all__ = ["StaticPolicy", "HorizontalAutoscaler", "ConcurrencyAutoscaler", "QLearningAutoscaler",
           "TabularPolicy", "kpa_scale"]


def _pytree(data, meta=()):
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))
    return wrap


def _no_move(observation: Observation) -> jax.Array:
    return jnp.zeros(observation.rate.shape, bool)


def kpa_scale(stable_concurrency, panic_concurrency, target, containers, panic_left, panic_threshold,
              stable_steps: int):
    """The KPA rule: (desired containers, steps of panic left).

    desired = ceil(stable concurrency / target), except in panic: the panic estimate
    reaching ``panic_threshold`` x the current size starts (or extends) a panic of
    ``stable_steps`` steps, during which the size only grows, to ceil(panic / target).
    """
    desired_stable = jnp.ceil(stable_concurrency / target).astype(jnp.int32)
    desired_panic = jnp.ceil(panic_concurrency / target).astype(jnp.int32)
    panic = desired_panic >= panic_threshold * containers
    panic_left = jnp.where(panic, stable_steps, jnp.maximum(panic_left - 1, 0))
    desired = jnp.where(panic_left > 0, jnp.maximum(containers, desired_panic), desired_stable)
    return jnp.maximum(desired, 1), panic_left


@_pytree(data=["containers", "cpu_steps"])
class StaticPolicy:
    """Fixed ``containers`` x ``cpu_steps`` for every function, all the time."""

    containers: int = 2
    cpu_steps: int = 8

    def init(self, num_functions: int, key: jax.Array):
        return ()

    def decide(self, state, observation: Observation, key: jax.Array):
        shape = observation.rate.shape
        return Decision(jnp.full(shape, self.containers, jnp.int32), jnp.full(shape, self.cpu_steps, jnp.int32),
                        _no_move(observation)), state


@_pytree(data=["target_utilization", "tolerance", "cpu_steps"], meta=["stabilization_steps"])
class HorizontalAutoscaler:
    """Kubernetes HPA: desired = ceil(n util / target) outside a +-tolerance band.

    Scale-down takes the highest recommendation of the last ``stabilization_steps`` steps
    (the HPA's 300 s downscale stabilization window at one-minute steps); scale-up is
    immediate (its default upscale window is 0).
    """

    target_utilization: float = 0.7
    tolerance: float = 0.1
    cpu_steps: int = 8
    stabilization_steps: int = 5

    def init(self, num_functions: int, key: jax.Array):
        return jnp.ones((self.stabilization_steps, num_functions), jnp.int32), jnp.int32(0)

    def decide(self, state, observation: Observation, key: jax.Array):
        window, t = state
        n = observation.containers
        ratio = observation.utilization / self.target_utilization
        raw = jnp.where(jnp.abs(ratio - 1.0) <= self.tolerance, n, jnp.ceil(n * ratio).astype(jnp.int32))
        raw = jnp.maximum(raw, 1)
        window = window.at[t % self.stabilization_steps].set(raw)     # the last W recommendations, this one included
        desired = jnp.where(raw < n, jnp.minimum(window.max(axis=0), n), raw)
        cpu = jnp.full(n.shape, self.cpu_steps, jnp.int32)
        return Decision(desired, cpu, _no_move(observation)), (window, t + 1)


@_pytree(data=["target_concurrency", "panic_threshold", "cpu_steps"], meta=["stable_steps"])
class ConcurrencyAutoscaler:
    """Knative KPA: desired = ceil(concurrency / target) with stable and panic modes.

    ``target_concurrency`` is the in-flight requests per container it aims for (a
    container serves one request at a time here, so Knative's containerConcurrency 1
    with its 70% target utilization is 0.7).
    """

    target_concurrency: float = 0.7
    panic_threshold: float = 2.0
    cpu_steps: int = 8
    stable_steps: int = 1

    def init(self, num_functions: int, key: jax.Array):
        return (jnp.zeros((self.stable_steps, num_functions)), jnp.int32(0),
                jnp.zeros((num_functions,), jnp.int32))

    def decide(self, state, observation: Observation, key: jax.Array):
        history, t, panic_left = state
        n = observation.containers
        history = history.at[t % self.stable_steps].set(observation.concurrency.astype(history.dtype))
        filled = jnp.minimum(t + 1, self.stable_steps)
        desired, panic_left = kpa_scale(history.sum(axis=0) / filled, observation.concurrency,
                                        self.target_concurrency, n, panic_left, self.panic_threshold,
                                        self.stable_steps)
        cpu = jnp.full(n.shape, self.cpu_steps, jnp.int32)
        return Decision(desired, cpu, _no_move(observation)), (history, t + 1, panic_left)


@_pytree(data=["q_values", "edges", "targets", "learning_rate", "discount", "exploration", "panic_threshold",
               "cpu_steps"])
class QLearningAutoscaler:
    """Per-function Q-learning of the KPA target: Q[i, load bin, target index].

    Each step every function updates Q[i, s_prev, a_prev] += alpha (r_prev + gamma max_a
    Q[i, s, a] - Q[i, s_prev, a_prev]) with the reward of its previous step, then picks an
    epsilon-greedy target and scales with the KPA rule at that target.  With
    ``learning_rate = exploration = 0`` it is the greedy learned policy.

    Attributes:
      q_values: [N, L, K] initial (or learned) Q table.
      edges: [L - 1] load-bin edges (``mfg.serverless.game.load_bin_edges``).
      targets: [K] target concurrencies per container to choose from.
    """

    q_values: jax.Array
    edges: jax.Array
    targets: jax.Array
    learning_rate: float = 0.1
    discount: float = 0.9
    exploration: float = 0.1
    panic_threshold: float = 2.0
    cpu_steps: int = 8

    @classmethod
    def untrained(cls, num_functions: int, edges, targets=(0.3, 0.5, 0.7, 0.9, 1.2), **kwargs):
        """A zero Q table for ``num_functions`` functions (learning on)."""
        edges = np.asarray(edges, np.float64)
        q = np.zeros((num_functions, len(edges) + 1, len(targets)))
        return cls(jnp.asarray(q), jnp.asarray(edges), jnp.asarray(targets, jnp.float64), **kwargs)

    def frozen(self, q_values) -> "QLearningAutoscaler":
        """The greedy policy of a learned table (no learning, no exploration)."""
        return dataclasses.replace(self, q_values=q_values, learning_rate=0.0, exploration=0.0)

    def init(self, num_functions: int, key: jax.Array):
        if self.q_values.shape[0] != num_functions:
            raise ValueError(f"the Q table holds {self.q_values.shape[0]} functions, the simulator {num_functions}.")
        zeros = jnp.zeros((num_functions,), jnp.int32)
        return self.q_values, zeros, zeros, jnp.bool_(False), zeros

    def decide(self, state, observation: Observation, key: jax.Array):
        q, s_prev, a_prev, started, panic_left = state
        rows = jnp.arange(q.shape[0])
        s = load_bin(observation.rate, self.edges)
        td = observation.reward + self.discount * q[rows, s].max(axis=1) - q[rows, s_prev, a_prev]
        q = q.at[rows, s_prev, a_prev].add(jnp.where(started, self.learning_rate * td, 0.0))
        explore_key, pick_key = jax.random.split(key)
        greedy = jnp.argmax(q[rows, s], axis=1)
        random = jax.random.randint(pick_key, greedy.shape, 0, q.shape[2])
        action = jnp.where(jax.random.uniform(explore_key, greedy.shape) < self.exploration, random, greedy)
        target = self.targets[action]
        n = observation.containers
        # A one-step stable window (60 s): the current minute is both estimates.
        desired, panic_left = kpa_scale(observation.concurrency, observation.concurrency, target, n, panic_left,
                                        self.panic_threshold, 1)
        cpu = jnp.full(n.shape, self.cpu_steps, jnp.int32)
        return (Decision(desired, cpu, _no_move(observation)),
                (q, s, action.astype(jnp.int32), jnp.bool_(True), panic_left))


@functools.partial(jax.tree_util.register_dataclass, data_fields=["probabilities", "edges"],
                   meta_fields=["max_containers", "max_cpu_steps", "greedy"])
@dataclasses.dataclass(frozen=True)
class TabularPolicy:
    """A tabular-game policy pi[s, a] applied to particles.

    Each particle's state is discretized to (load bin of its rate, containers, CPU steps,
    last move) -- the tabular game's state -- and its move is drawn from pi (or the
    argmax when ``greedy``), then applied as in the tabular game (an illegal move changes
    nothing and is flagged for the penalty).
    """

    probabilities: jax.Array
    edges: jax.Array
    max_containers: int
    max_cpu_steps: int
    greedy: bool = False

    def init(self, num_functions: int, key: jax.Array):
        return ()

    def decide(self, state, observation: Observation, key: jax.Array):
        s = state_index(load_bin(observation.rate, self.edges), observation.containers, observation.cpu_steps,
                        observation.last_move, self.max_containers, self.max_cpu_steps)
        probabilities = self.probabilities[s]
        if self.greedy:
            action = jnp.argmax(probabilities, axis=1)
        else:
            action = jax.random.categorical(key, jnp.log(jnp.maximum(probabilities, 1e-30)), axis=1)
        n, c, _, illegal, _ = apply_moves(observation.containers, observation.cpu_steps, observation.last_move,
                                          action, self.max_containers, self.max_cpu_steps)
        return Decision(n.astype(jnp.int32), c.astype(jnp.int32), illegal), state
