"""Deciders: from the observed metrics and current allocations to per-function targets.

``PolicyDecider`` runs an exported policy (``mfg_policy``, numpy only): each function's
observation is the tabular game's state -- its request rate in the policy's load bins, its
containers and CPU steps (cores / ``cpu_step_cores``), and its last scaling direction,
which the decider remembers between calls as the simulator does -- and the sampled (or
greedy) move gives the target.

``AutoscalerDecider`` runs any autoscaler of ``mfg.serverless.autoscalers`` (HPA-like, KPA-like,
static, Q-learning) on the same observations.  What a platform does not measure
(utilization, concurrency, p99) is filled in from the cluster model, as the simulator
computes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfg.serverless.adapters.core import Allocation, FunctionMetrics, Target

__all__ = ["PolicyDecider", "AutoscalerDecider", "MoveTracker"]

class MoveTracker:
    """Each function's last scaling direction (0 none, 1 out, 2 in), from its allocations over
    time: ``mfg.serverless.game.move_direction`` of each change; no change keeps the last."""

    def __init__(self):
        self._last: dict[str, tuple[int, int, int]] = {}

    def update(self, name: str, containers: int, cpu_steps: int) -> int:
        from mfg.serverless.game import NONE, move_direction

        n0, c0, move = self._last.get(name, (containers, cpu_steps, NONE))
        direction = int(move_direction(n0, c0, containers, cpu_steps))
        move = move if direction == NONE else direction
        self._last[name] = (containers, cpu_steps, move)
        return move


class PolicyDecider:
    """An exported serverless policy as a decider.

    Args:
      policy: a loaded ``mfg_policy.ExportedPolicy`` of the serverless game.
      greedy: play the most likely move instead of sampling pi.
      seed: the sampling generator's seed.
    """

    def __init__(self, policy: Any, greedy: bool = False, seed: int = 0):
        spec = policy.observation
        if spec.get("kind") != "serverless":
            raise ValueError(f"the control loop needs a serverless policy, this one observes {spec.get('kind')!r}")
        self.policy, self.greedy = policy, greedy
        self.cpu_step = float(spec["cpu_step_cores"])
        self.rng = np.random.default_rng(seed)
        self.moves = MoveTracker()

    def cpu_steps(self, cores: float) -> int:
        return int(np.clip(np.rint(cores / self.cpu_step), 1, self.policy.observation["max_cpu_steps"]))

    def decide(self, metrics: list[FunctionMetrics], current: dict[str, Allocation]) -> list[Target]:
        if not metrics:
            return []
        rows = []
        for m in metrics:
            allocation = current[m.name]
            steps = self.cpu_steps(allocation.cpu)
            rows.append([m.request_rate, allocation.containers, steps,
                         self.moves.update(m.name, allocation.containers, steps)])
        observation = np.asarray(rows, np.float64)
        action = self.policy.act(observation, self.rng, greedy=self.greedy)
        containers, cpu_steps, _ = self.policy.next_allocation(observation, action)
        return [Target(m.name, int(n), float(c) * self.cpu_step) for m, n, c in zip(metrics, containers, cpu_steps)]


class AutoscalerDecider:
    """An ``mfg.serverless.autoscalers`` policy as a decider (its state kept between calls).

    Args:
      autoscaler: e.g. ``HorizontalAutoscaler()``, ``ConcurrencyAutoscaler()``.
      model: the cluster model (CPU step size, bounds, and the estimates of what is not
        measured).
      seed: PRNG seed of the autoscaler's own randomness (Q-learning's exploration).
    """

    def __init__(self, autoscaler: Any, model: Any = None, seed: int = 0):
        import jax

        from mfg.serverless.cluster import ClusterModel, P99Table

        self.autoscaler = autoscaler
        self.model = model or ClusterModel()
        self.table = P99Table.cached(self.model.max_containers)
        self.key = jax.random.PRNGKey(seed)
        self.names: list[str] | None = None
        self.state = None
        self.moves = MoveTracker()
        self._decide = jax.jit(autoscaler.decide)

    def decide(self, metrics: list[FunctionMetrics], current: dict[str, Allocation]) -> list[Target]:
        import jax
        import jax.numpy as jnp

        from mfg.serverless.particles import observe

        if not metrics:
            return []
        names = [m.name for m in metrics]
        if names != self.names:                      # a new set of functions: a fresh autoscaler state
            self.names = names
            self.key, init_key = jax.random.split(self.key)
            self.state = self.autoscaler.init(len(names), init_key)
        model = self.model
        n = np.asarray([current[m].containers for m in names], np.int32)
        c = np.asarray([int(np.clip(np.rint(current[m].cpu / model.cpu_step), 1, model.max_cpu_steps))
                        for m in names], np.int32)
        moves = np.asarray([self.moves.update(m, int(a), int(b)) for m, a, b in zip(names, n, c)], np.int32)
        rate = jnp.asarray([m.request_rate for m in metrics], jnp.float32)
        estimate = observe(model, self.table, rate, jnp.asarray(n), jnp.asarray(c), jnp.asarray(moves),
                           jnp.zeros_like(rate))

        def measured(field, estimated):
            return jnp.asarray([estimated[i] if getattr(m, field) is None else getattr(m, field)
                                for i, m in enumerate(metrics)], jnp.float32)

        cores = n * c * model.cpu_step
        usage = measured("cpu_usage", np.asarray(estimate.utilization) * cores)
        observation = estimate._replace(utilization=usage / jnp.asarray(cores, jnp.float32),
                                        concurrency=measured("concurrency", np.asarray(estimate.concurrency)),
                                        p99=measured("latency_p99", np.asarray(estimate.p99)))
        self.key, key = jax.random.split(self.key)
        decision, self.state = self._decide(self.state, observation, key)
        concurrency = getattr(self.autoscaler, "target_concurrency", None)
        concurrency = None if concurrency is None else float(concurrency)
        return [Target(name, int(a), float(b) * model.cpu_step, concurrency)
                for name, a, b in zip(names, np.asarray(decision.containers), np.asarray(decision.cpu_steps))]
