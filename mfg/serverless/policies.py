"""Autoscaling policies for the tick simulator (``mfg.serverless.simulator``).

A policy is a pytree (its knobs are arrays where a sweep should reuse one compilation)
with a static ``period`` (seconds between its decisions) and

    init(num_functions, key) -> state
    record(state, measurement, now) -> state                 every tick, after serving
    decide(state, view, key) -> (containers, cpu, state)     at its decision instants

``record`` sees what the platform measured over the tick that just ended
(``Measurement``); ``decide`` sees the allocation now and the last published pressure
(``View``), never the arrivals it is about to serve.

* ``Static``: a fixed size and CPU (the knob: the size).
* ``Scripted``: sizes given in advance as a step function of time (the scenarios that
  check the simulator against the request-level reference).
* ``KPA``: the Knative Pod Autoscaler (``mfg.serverless.kpa``) on the concurrency that
  the queue-proxies and the activator report, averaged over its stable and panic
  windows of per-tick measurements, every 2 s (knobs: target concurrency, CPU request);
  or on a rate rule sized from an idle cluster's service rate, which with
  ``pressure_aware`` accounts for the published pressure (see the class).
* ``HPA``: the Kubernetes Horizontal Pod Autoscaler (``mfg.serverless.hpa``) on the ready
  pods' CPU usage / request, averaged over its sync period, every 15 s (knobs: target
  utilization, CPU request).
* ``QLearningKPA``: per-function tabular Q-learning of the KPA's target concurrency
  (state: load bin; action: one of ``targets``), as in the Knative RL study of Schuler,
  Jamil and Kuhl (CCGrid 2021), on the simulator's measured violations and allocation.
* ``TabularMoves``: a policy of the minute-level tabular game (``mfg.serverless.game``:
  the MFG equilibrium that ``mfg run`` trains today, or an independent one) on the tick
  simulator: every ``period`` it reads each function's arrival rate over the period, its
  containers and CPU as the game's state (load bin, containers, CPU steps, last move)
  and applies the game's one-step move.
* ``TabularTargets``: a policy of the coarse-grained game (``mfg.serverless.target_game``:
  type, load bin, warm; target actions) on the tick simulator: every decision period it
  picks each function's KPA target, min scale and CPU, and the KPA scales with them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mfg.serverless.hpa import HPAConfig, hpa_decide, hpa_init
from mfg.serverless.kpa import KPAConfig, kpa_decide, kpa_init

__all__ = ["Static", "Scripted", "KPA", "HPA", "TabularMoves", "QLearningKPA", "TabularTargets", "coarse_state"]


def _pytree(data, meta=()):
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))
    return wrap


class _Memoryless:
    """A policy that remembers nothing: no state, nothing recorded."""

    def init(self, num_functions, key):
        return ()

    def record(self, state, measurement, now):
        return state


@_pytree(data=["containers", "cpu"], meta=["period"])
class Static(_Memoryless):
    """Every function keeps ``containers`` containers of ``cpu`` cores (scalars or [N])."""

    containers: float = 1.0
    cpu: float = 1.0
    period: float = 60.0

    def decide(self, state, view, key):
        shape = view.ready.shape
        return (jnp.broadcast_to(jnp.asarray(self.containers, view.ready.dtype), shape),
                jnp.broadcast_to(jnp.asarray(self.cpu, view.cpu.dtype), shape), state)


@_pytree(data=["times", "containers", "cpu"], meta=["period"])
class Scripted(_Memoryless):
    """Sizes as a step function of time: ``containers[e]`` from ``times[e]`` on.

    Attributes:
      times: [E] increasing times (s); before the first, ``containers[0]``.
      containers: [E, N] the size of every function from each time.
      cpu: cores per container (scalar or [N]).
      period: how often the script is read (the tick, so that changes land on time).
    """

    times: np.ndarray
    containers: np.ndarray
    cpu: float = 1.0
    period: float = 2.0

    def decide(self, state, view, key):
        times = jnp.asarray(self.times, view.now.dtype)
        event = jnp.clip(jnp.sum(times <= view.now + 1e-6) - 1, 0, times.shape[0] - 1)
        target = jnp.asarray(self.containers, view.ready.dtype)[event]
        return target, jnp.broadcast_to(jnp.asarray(self.cpu, view.cpu.dtype), view.ready.shape), state


class _Window:
    """A ring of the last ``length`` per-tick values of every function ([N, length])."""

    @staticmethod
    def init(num_functions, length, dtype=jnp.float32):
        return jnp.zeros((num_functions, length), dtype), jnp.zeros((), jnp.int32)

    @staticmethod
    def push(ring, count, value):
        length = ring.shape[1]
        return ring.at[:, count % length].set(value.astype(ring.dtype)), count + 1

    @staticmethod
    def mean_of_last(ring, count, ticks: int):
        """Mean of the last ``ticks`` values (of those recorded so far)."""
        length = ring.shape[1]
        # slot j holds the value pushed at the latest count' = j (mod length): its age is
        # (count - 1 - j) mod length ticks, and it exists once count > age
        age = (count - 1 - jnp.arange(length)) % length
        recent = (age < ticks) & (age < count)
        filled = jnp.maximum(jnp.minimum(count, ticks), 1)
        return jnp.sum(jnp.where(recent, ring, 0.0), axis=1) / filled


class _KPAWindow:
    """What the KPA-based policies share: a ``config`` (``KPAConfig``) and a tick ``dt``,
    the decider's period, a window of per-tick metrics, and the decision from it."""

    @property
    def period(self) -> float:
        return self.config.tick

    def _ticks(self, seconds):
        return max(1, int(round(seconds / self.dt)))

    def _window(self, num_functions):
        return _Window.init(num_functions, self._ticks(self.config.stable_window))

    def _kpa_step(self, ring, count, kpa_state, view, target_value=None):
        """(pods, new KPA state) from the window's stable and panic averages.

        Until a metric has been recorded the size stays (upstream's decider reports an
        invalid scale and nothing changes)."""
        stable = _Window.mean_of_last(ring, count, self._ticks(self.config.stable_window))
        panic = _Window.mean_of_last(ring, count, self._ticks(self.config.panic_window))
        pods, decided = kpa_decide(self.config, kpa_state, view.now, view.ready, stable, panic,
                                   target_value=target_value)
        measured = count > 0
        pods = jnp.where(measured, pods.astype(view.ready.dtype), view.ready + view.starting)
        return pods, jax.tree.map(lambda new, old: jnp.where(measured, new, old), decided, kpa_state)


@_pytree(data=["cpu", "service_mean"], meta=["config", "dt", "pressure_aware"])
class KPA(_KPAWindow):
    """The Knative Pod Autoscaler, as upstream decides, on the simulator's measurements.

    Every tick a metric is pushed into a window of ``stable_window / dt`` ticks; every
    ``config.tick`` seconds its stable and panic averages go through
    ``mfg.serverless.kpa.kpa_decide``.  The metric is the concurrency the queue-proxies
    and the activator report (in-flight requests, waiting ones too: Knative's default),
    or, with ``service_mean`` given, a rate rule: the arrival rate times the function's
    service time at one core, the in-flight count an idle cluster would hold (the KPA's
    rule in requests per second, with the target RPS sized from an idle cluster's
    service rate).

    Attributes:
      config: the KPA's settings (``KPAConfig``; its ``target`` is the knob swept).
      cpu: cores requested per container.
      service_mean: None (concurrency metric) or [N] service times (rate rule).
      dt: the simulator's tick (the window's resolution).
      pressure_aware: with the rate rule, size for the slowdown that the published
        pressure P implies (the metric times max(1, P): a busy request gets about 1 / P
        of a core when the cluster's busy containers want P times its cores).
    """

    config: KPAConfig = KPAConfig()
    cpu: float = 1.0
    service_mean: jax.Array | None = None
    dt: float = 2.0
    pressure_aware: bool = False

    def __post_init__(self):
        if self.pressure_aware and self.service_mean is None:
            raise ValueError("KPA(pressure_aware=True) needs the rate rule (service_mean): the concurrency metric "
                             "already holds the slowdown")

    def init(self, num_functions, key):
        ring, count = self._window(num_functions)
        return ring, count, kpa_init(num_functions)

    def record(self, state, measurement, now):
        ring, count, kpa_state = state
        if self.service_mean is None:
            metric = measurement.concurrency
        else:
            metric = measurement.arrivals / self.dt * jnp.asarray(self.service_mean)
            if self.pressure_aware:
                metric = metric * jnp.maximum(1.0, measurement.pressure)
        ring, count = _Window.push(ring, count, metric)
        return ring, count, kpa_state

    def decide(self, state, view, key):
        ring, count, kpa_state = state
        pods, kpa_state = self._kpa_step(ring, count, kpa_state, view)
        cpu = jnp.broadcast_to(jnp.asarray(self.cpu, view.cpu.dtype), view.ready.shape)
        return pods, cpu, (ring, count, kpa_state)


@_pytree(data=["cpu"], meta=["config"])
class HPA:
    """The Kubernetes HPA on CPU, as upstream decides, on the simulator's measurements.

    Every tick adds the ready pods' used core-seconds and their requested core-seconds;
    every ``config.sync_period`` the ratio (the utilization over the period, which may
    exceed 1: a pod can use more than its request while the node has idle cores) goes
    through ``mfg.serverless.hpa.hpa_decide`` with the ready and starting pods.

    Attributes:
      config: the HPA's settings (``HPAConfig``; ``target_utilization`` is the knob).
      cpu: cores requested per container.
    """

    config: HPAConfig = HPAConfig()
    cpu: float = 1.0

    @property
    def period(self) -> float:
        return self.config.sync_period

    def init(self, num_functions, key):
        zeros = jnp.zeros((num_functions,))
        return hpa_init(self.config, jnp.ones((num_functions,), jnp.int32)), zeros, zeros

    def record(self, state, measurement, now):
        hpa_state, used, requested = state
        return hpa_state, used + measurement.usage, requested + measurement.ready * measurement.cpu

    def decide(self, state, view, key):
        hpa_state, used, requested = state
        utilization = jnp.where(requested > 0, used / jnp.maximum(requested, 1e-30), 0.0)
        current = (view.ready + view.starting).astype(jnp.int32)
        # pods without a CPU sample yet count as not reporting (upstream keeps the count)
        ready = jnp.where(requested > 0, view.ready, 0.0).astype(jnp.int32)
        pods, hpa_state = hpa_decide(self.config, hpa_state, view.now, current, ready,
                                     view.starting.astype(jnp.int32), utilization)
        cpu = jnp.broadcast_to(jnp.asarray(self.cpu, view.cpu.dtype), view.ready.shape)
        zeros = jnp.zeros_like(used)
        return pods.astype(view.ready.dtype), cpu, (hpa_state, zeros, zeros)


@_pytree(data=["probabilities", "edges"], meta=["max_containers", "max_cpu_steps", "cpu_step", "period", "greedy",
                                                "dt"])
class TabularMoves:
    """A tabular serverless game's policy pi[s, a] on the tick simulator.

    Attributes:
      probabilities: [S, A] the game's policy (S = loads x containers x CPU steps x 3).
      edges: [L - 1] the game's load-bin edges in log(rate) (``params["load_edges"]``).
      max_containers, max_cpu_steps, cpu_step: the game's bounds and CPU step (cores).
      period: seconds between moves (60: the game's step).
      greedy: the most probable move instead of a draw.
      dt: the simulator's tick (to turn the arrivals counted into a rate).

    The game's container count starts at 1, so a function at 0 containers (never the
    case unless another policy ran before) reads as 1.
    """

    probabilities: jax.Array
    edges: jax.Array
    max_containers: int
    max_cpu_steps: int
    cpu_step: float = 0.125
    period: float = 60.0
    greedy: bool = False
    dt: float = 2.0

    def init(self, num_functions, key):
        zeros = jnp.zeros((num_functions,))
        return zeros, jnp.zeros((), jnp.float32), jnp.zeros((num_functions,), jnp.int32)

    def record(self, state, measurement, now):
        arrived, seconds, last_move = state
        return arrived + measurement.arrivals, seconds + self.dt, last_move

    def decide(self, state, view, key):
        from mfg.serverless.game import apply_moves, load_bin, state_index
        arrived, seconds, last_move = state
        rate = arrived / jnp.maximum(seconds, 1e-9)
        containers = jnp.clip(jnp.round(view.ready + view.starting), 1, self.max_containers).astype(jnp.int32)
        steps = jnp.clip(jnp.round(view.cpu / self.cpu_step), 1, self.max_cpu_steps).astype(jnp.int32)
        index = state_index(load_bin(rate, self.edges), containers, steps, last_move, self.max_containers,
                            self.max_cpu_steps)
        probabilities = jnp.asarray(self.probabilities)[index]
        if self.greedy:
            action = jnp.argmax(probabilities, axis=1)
        else:
            action = jax.random.categorical(key, jnp.log(jnp.maximum(probabilities, 1e-30)), axis=1)
        n, c, moved, _, _ = apply_moves(containers, steps, last_move, action, self.max_containers,
                                        self.max_cpu_steps)
        zeros = jnp.zeros_like(arrived)
        return (n.astype(view.ready.dtype), (c * self.cpu_step).astype(view.cpu.dtype),
                (zeros, jnp.zeros_like(seconds), moved.astype(jnp.int32)))



@_pytree(data=["q_values", "edges", "targets", "learning_rate", "discount", "exploration", "price", "cpu"],
         meta=["config", "dt", "learn_period"])
class QLearningKPA(_KPAWindow):
    """Per-function Q-learning of the KPA target: Q[i, load bin, target index].

    The KPA (``config``, every ``config.tick`` s) scales each function with the target
    its Q table picks.  Every ``learn_period`` seconds each function observes the load bin
    of its arrival rate over the period, updates Q[i, s_prev, a_prev] += alpha (r + gamma
    max_a Q[i, s, a] - Q[i, s_prev, a_prev]) with r the period's reward -(SLO violations +
    price x allocated core-seconds), and picks an epsilon-greedy target.  With
    ``learning_rate = exploration = 0`` (``frozen``) it is the greedy learned policy.

    Attributes:
      q_values: [N, L, K] initial (or learned) Q table.
      edges: [L - 1] load-bin edges in log(rate).
      targets: [K] target concurrencies per container to choose from.
    """

    q_values: jax.Array
    edges: jax.Array
    targets: jax.Array
    learning_rate: float = 0.1
    discount: float = 0.9
    exploration: float = 0.1
    price: float = 0.0
    cpu: float = 1.0
    config: KPAConfig = KPAConfig()
    dt: float = 2.0
    learn_period: float = 30.0

    @classmethod
    def untrained(cls, num_functions: int, edges, targets=(0.3, 0.5, 1.0, 2.0), **kwargs):
        """A zero Q table for ``num_functions`` functions (learning on)."""
        edges = np.asarray(edges, np.float32)
        q = np.zeros((num_functions, len(edges) + 1, len(targets)), np.float32)
        return cls(jnp.asarray(q), jnp.asarray(edges), jnp.asarray(targets, jnp.float32), **kwargs)

    def frozen(self, q_values) -> "QLearningKPA":
        """The greedy policy of a learned table (no learning, no exploration)."""
        return dataclasses.replace(self, q_values=q_values, learning_rate=0.0, exploration=0.0)

    def init(self, num_functions, key):
        if self.q_values.shape[0] != num_functions:
            raise ValueError(f"the Q table holds {self.q_values.shape[0]} functions, the simulator {num_functions}")
        ring, count = self._window(num_functions)
        zeros = jnp.zeros((num_functions,))
        ints = jnp.zeros((num_functions,), jnp.int32)
        # (Q, window, KPA state, reward and arrivals since the last step, s_prev, a_prev, steps taken)
        return (jnp.asarray(self.q_values), ring, count, kpa_init(num_functions), zeros, zeros, ints, ints,
                jnp.zeros((), jnp.int32))

    def record(self, state, measurement, now):
        q, ring, count, kpa_state, reward, arrived, s_prev, a_prev, steps = state
        ring, count = _Window.push(ring, count, measurement.concurrency)
        cost = measurement.violations + self.price * measurement.ready * measurement.cpu * self.dt
        return q, ring, count, kpa_state, reward - cost, arrived + measurement.arrivals, s_prev, a_prev, steps

    def decide(self, state, view, key):
        from mfg.serverless.game import load_bin
        q, ring, count, kpa_state, reward, arrived, s_prev, a_prev, steps = state
        learn = jnp.floor(view.now / self.learn_period + 1e-6) >= steps
        rows = jnp.arange(q.shape[0])
        s = load_bin(arrived / self.learn_period, self.edges).astype(jnp.int32)
        td = reward + self.discount * q[rows, s].max(axis=1) - q[rows, s_prev, a_prev]
        updated = q.at[rows, s_prev, a_prev].add(jnp.where(steps > 0, self.learning_rate * td, 0.0).astype(q.dtype))
        explore_key, pick_key = jax.random.split(key)
        greedy = jnp.argmax(updated[rows, s], axis=1).astype(jnp.int32)
        random = jax.random.randint(pick_key, greedy.shape, 0, q.shape[2])
        action = jnp.where(jax.random.uniform(explore_key, greedy.shape) < self.exploration, random, greedy)
        q = jnp.where(learn, updated, q)
        a_prev = jnp.where(learn, action, a_prev)
        s_prev = jnp.where(learn, s, s_prev)
        reward = jnp.where(learn, 0.0, reward)
        arrived = jnp.where(learn, 0.0, arrived)
        steps = jnp.where(learn, steps + 1, steps)
        target = jnp.asarray(self.targets)[a_prev] * self.config.target_utilization
        pods, kpa_state = self._kpa_step(ring, count, kpa_state, view, target_value=target)
        cpu = jnp.broadcast_to(jnp.asarray(self.cpu, view.cpu.dtype), view.ready.shape)
        return pods, cpu, (q, ring, count, kpa_state, reward, arrived, s_prev, a_prev, steps)


def coarse_state(types, load_edges, num_bins: int, rate, busy, warm) -> jax.Array:
    """[N] int: the coarse-grained game's state index (``mfg.serverless.target_game``),
    s = (k L + l) 2 + w, of functions of type k (``types`` [N]) whose arrivals over the
    period just ended came at ``rate`` (req/s; ``busy``: any arrived): load bin l = 0 if
    none arrived, else 1 + the number of the type's ``load_edges`` [K, L - 2] (log rates)
    below log(rate), as ``target_game.coarse_grain`` bins the trace; w = ``warm`` (the
    function holds containers)."""
    types = jnp.asarray(types)
    edges = jnp.asarray(load_edges)[types]                                                # [N, L - 2]
    busy_bin = 1 + jnp.sum(jnp.log(jnp.maximum(rate, 1e-30))[:, None] > edges, axis=1)
    load = jnp.where(busy, busy_bin, 0)
    return ((types * num_bins + load) * 2 + warm.astype(load.dtype)).astype(jnp.int32)


@_pytree(data=["probabilities", "types", "load_edges", "actions"],
         meta=["num_bins", "decision_period", "config", "dt"])
class TabularTargets(_KPAWindow):
    """A policy of the coarse-grained game (``mfg.serverless.target_game``) on the tick simulator.

    Every ``decision_period`` seconds each function reads its game state, (type k, load
    bin l of its arrivals over the period just ended, warm w = ready + starting > 0),
    and takes the action of highest probability there, (KPA target tau, min scale m,
    CPU c); every ``config.tick`` seconds in between, the upstream KPA decider scales it
    with the target tau x target utilization, floored at m, with c cores per container.
    Before its first period has been measured a function reads the idle bin (and the
    KPA keeps its size until it has a metric).

    Attributes:
      probabilities: [S, A] the game's policy, S = 2 K L.
      types: [N] int the type of each simulated function (``target_game.type_of``).
      load_edges: [K, L - 2] per type, edges in log(rate) between busy bins 1..L-1
        (bin 0: no arrival in the period; +inf pads a type with fewer bins).
      actions: [A, 3] (target, min scale, cpu) of every action (``TargetActions.table``).
      num_bins: L.
    """

    probabilities: jax.Array
    types: jax.Array
    load_edges: jax.Array
    actions: jax.Array
    num_bins: int = 8
    decision_period: float = 60.0
    config: KPAConfig = KPAConfig()
    dt: float = 2.0

    def init(self, num_functions, key):
        if int(np.shape(self.types)[0]) != num_functions:
            raise ValueError(f"the policy holds types for {np.shape(self.types)[0]} functions, the simulator "
                             f"{num_functions}")
        ring, count = self._window(num_functions)
        zeros = jnp.zeros((num_functions,), jnp.float32)
        return ring, count, kpa_init(num_functions), zeros, zeros, zeros, zeros

    def record(self, state, measurement, now):
        ring, count, kpa_state, arrived, target, floor, cpu = state
        ring, count = _Window.push(ring, count, measurement.concurrency)
        return ring, count, kpa_state, arrived + measurement.arrivals.astype(arrived.dtype), target, floor, cpu

    def states(self, arrived, warm) -> jax.Array:
        """[N] the game's state index of each function from its arrivals over a period."""
        return coarse_state(self.types, self.load_edges, self.num_bins, arrived / self.decision_period, arrived > 0,
                            warm)

    def decide(self, state, view, key):
        ring, count, kpa_state, arrived, target, floor, cpu = state
        every = int(round(self.decision_period / self.config.tick))
        at_decision = (jnp.round(view.now / self.config.tick).astype(jnp.int32) % every) == 0
        s = self.states(arrived, (view.ready + view.starting) > 0)
        row = jnp.asarray(self.actions)[jnp.argmax(jnp.asarray(self.probabilities)[s], axis=1)]       # [N, 3]
        target = jnp.where(at_decision, row[:, 0] * self.config.target_utilization, target).astype(target.dtype)
        floor = jnp.where(at_decision, row[:, 1], floor).astype(floor.dtype)
        cpu = jnp.where(at_decision, row[:, 2], cpu).astype(cpu.dtype)
        arrived = jnp.where(at_decision, 0.0, arrived).astype(arrived.dtype)
        pods, kpa_state = self._kpa_step(ring, count, kpa_state, view, target_value=target)
        pods = jnp.maximum(pods, floor.astype(pods.dtype))
        return pods, cpu.astype(view.cpu.dtype), (ring, count, kpa_state, arrived, target, floor, cpu)
