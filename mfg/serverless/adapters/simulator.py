"""The particle simulator behind the adapter interface: a cluster the control loop can drive.

``SimulatedCluster`` is both a metrics source and a platform.  It holds N functions of
``mfg.serverless.particles`` one minute at a time:

    observe()  -> each function's rate, CPU used, p50/p99 latency and concurrency this minute
    read(f)    -> its allocation (containers, cores per container)
    apply(t)   -> records the target for this minute (CPU rounded to the model's steps)
    advance()  -> serves the minute with the targets (``mfg.serverless.particles.serve``) and moves on

so that ``ControlLoop(cluster, decider, cluster).step(); cluster.advance()`` repeated T
times is the episode ``mfg.serverless.particles.simulate`` runs in one ``lax.scan`` -- the same
observation and serving functions, the same load and random keys -- with the decision
taken outside, by the code that drives a real cluster.  ``result()`` returns the
accumulated ``ParticleResult`` for ``mfg.serverless.evaluation.summarize``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mfg.serverless.adapters.core import AdapterError, Allocation, FunctionMetrics, Target
from mfg.serverless.cluster import ClusterModel, P99Table
from mfg.serverless.game import NONE
from mfg.serverless.particles import (Decision, ParticleResult, accumulate, latency_edges, observe, serve,
                           zero_accumulators)

__all__ = ["SimulatedCluster"]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _observe(model, table, load, load_state, t, n, c, m, reward):
    lam = load.rate(load_state, t).astype(reward.dtype)
    return observe(model, table, lam, n, c, m, reward, reward.dtype)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _serve(model, table, edges, observation, decision, acc):
    n, c, m, reward, per_step, histogram, series = serve(model, table, edges, observation, decision,
                                                         observation.reward.dtype)
    return n, c, m, reward, accumulate(acc, per_step, histogram), series


class SimulatedCluster:
    """N simulated functions named ``names`` (default f0000, f0001, ...).

    Args:
      model: the cluster constants.
      load: a ``TraceLoad`` or ``MarkovLoad`` of N functions.
      key: PRNG key, split as ``mfg.serverless.particles.simulate`` splits it (so the load chain
        draws the same rates).
      names: the functions' names.
      initial_containers: everyone's containers at t = 0.
      initial_cpu_steps: everyone's CPU steps per container at t = 0.
      dtype: float type of the simulation.
    """

    name = "simulator"

    def __init__(self, model: ClusterModel, load: Any, key: jax.Array, names: list[str] | None = None,
                 initial_containers: int = 1, initial_cpu_steps: int = 1, dtype: Any = jnp.float32):
        N = load.num_functions
        self.names = list(names) if names is not None else [f"f{i:04d}" for i in range(N)]
        if len(self.names) != N or len(set(self.names)) != N:
            raise ValueError(f"need {N} distinct function names, got {len(self.names)} ({len(set(self.names))} distinct)")
        self.index = {name: i for i, name in enumerate(self.names)}
        self.model, self.load = model, load
        self.table = P99Table.cached(model.max_containers)
        self.edges = jnp.asarray(latency_edges(), dtype)
        load_key, _, self.run_key = jax.random.split(key, 3)
        self.load_state = load.init(load_key)
        self.t = 0
        self.n = jnp.full((N,), initial_containers, jnp.int32)
        self.c = jnp.full((N,), initial_cpu_steps, jnp.int32)
        self.m = jnp.full((N,), NONE, jnp.int32)
        self.reward = jnp.zeros((N,), dtype)
        self.acc = zero_accumulators(N, self.edges.shape[0], dtype)
        self.series: list[dict] = []
        self._observation = None
        self._targets_n = self._targets_c = None

    # -- the minute being decided
    def _now(self):
        if self._observation is None:
            if self.t >= self.load.num_steps:
                raise AdapterError(f"the load series ends after {self.load.num_steps} minutes")
            self._observation = _observe(self.model, self.table, self.load, self.load_state, self.t,
                                         self.n, self.c, self.m, self.reward)
            self._targets_n, self._targets_c = np.asarray(self.n).copy(), np.asarray(self.c).copy()
        return self._observation

    def observe(self) -> list[FunctionMetrics]:
        """Every function's metrics at the start of this minute (what a Prometheus query returns)."""
        obs = self._now()
        rate, util, conc, p99 = (np.asarray(x, np.float64) for x in (obs.rate, obs.utilization, obs.concurrency,
                                                                       obs.p99))
        cores = np.asarray(obs.containers) * np.asarray(obs.cpu_steps) * self.model.cpu_step
        return [FunctionMetrics(name, float(rate[i]), cpu_usage=float(util[i] * cores[i]), latency_p99=float(p99[i]),
                                concurrency=float(conc[i])) for i, name in enumerate(self.names)]

    def _position(self, function: str) -> int:
        if function not in self.index:
            raise AdapterError(f"the simulator has no function {function!r}")
        return self.index[function]

    def read(self, function: str) -> Allocation:
        i = self._position(function)
        self._now()
        return Allocation(int(self._targets_n[i]), float(self._targets_c[i]) * self.model.cpu_step)

    def apply(self, target: Target) -> list:
        i = self._position(target.name)
        self._now()
        self._targets_n[i] = target.containers
        self._targets_c[i] = int(np.clip(np.rint(target.cpu / self.model.cpu_step), 1, self.model.max_cpu_steps))
        return []

    def advance(self) -> None:
        """Serve this minute with the applied targets (unchanged functions keep theirs)."""
        obs = self._now()
        decision = Decision(jnp.asarray(self._targets_n), jnp.asarray(self._targets_c),
                            jnp.zeros(self._targets_n.shape, bool))
        self.n, self.c, self.m, self.reward, self.acc, series = _serve(self.model, self.table, self.edges, obs,
                                                                       decision, self.acc)
        self.series.append(series)
        step_key = jax.random.fold_in(self.run_key, self.t)
        _, load_key = jax.random.split(step_key)
        self.load_state = self.load.advance(self.load_state, load_key)
        self.t += 1
        self._observation = None

    def result(self) -> ParticleResult:
        """The episode so far, as ``mfg.serverless.particles.simulate`` returns it."""
        series = {k: jnp.stack([s[k] for s in self.series]) for k in (self.series[0] if self.series else {})}
        return ParticleResult(self.acc, series, ())
