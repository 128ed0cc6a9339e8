"""The cluster model shared by both forms of the serverless game.

One frozen set of constants (``ClusterModel``) and the pure functions that turn a
function's load and allocation, and the population's CPU pressure, into latency and
reward.  The tabular game (``mfg.serverless.game``) and the particle simulator
(``mfg.serverless.particles``) both call these functions, so they model exactly the same cluster.

Per function (all arrays broadcast; rates in requests/s, times in seconds, CPU in cores):

  contention   slowdown(P) = 1 + contention * max(0, P - knee),   P = allocated / capacity
  service      mu(c, P)    = c * cpu_step * service_rate_per_core / slowdown(P)
               (per container; a container serves one request at a time)
  latency      M/M/n with arrival rate lam and n containers of rate mu (``mfg.serverless.queueing``)
  tail         p99 + cold_start   when the step added containers
  SLO          preservation = min(1, slo / tail latency)   (0 for an unstable queue)
  utilization  min(lam / (n mu(c, 0)), 1 / slowdown(P))   CPU used / allocated: contention
               stretches a request's time, not its work, and caps a container's share
  reward       w_util * utilization + w_slo * SLO preservation           (template, the default)
               w_slo * SLO preservation - price * allocated cores         (cost form)

The constants and where they come from (docs/serverless.md has the discussion):

  cpu_step 0.125 core        128 cpu-shares, the step of the FIRM / MA-PPO action space
  max_cpu_steps 8            [128, 1024] shares per container (FIRM uses up to 2048)
  max_containers 8           MA-PPO scales each function over up to 10-20 containers
  service_rate_per_core 8/s  125 ms of CPU per request at one core (the trace's median
                             function runs ~0.7 s at its allotted share; we take a
                             lighter, CPU-bound function so that queueing matters)
  slo 1.0 s on p99           attainable (p99 = 0.58 s at one core, idle) but not at 1/8 core
  cold_start 0.3 s           a warm-pool container start in OpenWhisk / Knative
  capacity 4 cores/function, knee 0.7, contention 4: the cluster is provisioned for half
                             the peak allocation; past 70% allocated, every container
                             slows down linearly (x2.2 at full allocation)
  timeout 60 s               OpenWhisk's default action time limit: latency of a request
                             in an overloaded (unstable) queue
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mfg.serverless.queueing import erlang_c, response_time_quantile

__all__ = ["ClusterModel", "slowdown", "service_rate", "p99_latency", "function_reward", "cpu_utilization",
           "P99Table", "cpu_pressure"]


@dataclasses.dataclass(frozen=True)
class ClusterModel:
    """Constants of the serverless cluster (see the module docstring for their sources)."""

    max_containers: int = 8
    max_cpu_steps: int = 8
    cpu_step: float = 0.125
    service_rate_per_core: float = 8.0
    slo: float = 1.0
    cold_start: float = 0.3
    capacity: float = 4.0
    knee: float = 0.7
    contention: float = 4.0
    w_util: float = 0.3
    w_slo: float = 0.7
    reward_form: str = "template"
    price: float = 0.0
    illegal_penalty: float = -1.0
    oscillation_penalty: float = -1.0
    timeout: float = 60.0

    def __post_init__(self):
        for name in ("max_containers", "max_cpu_steps"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"ClusterModel.{name} must be a positive int, got {value!r}.")
        for name in ("cpu_step", "service_rate_per_core", "slo", "capacity", "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ClusterModel.{name} must be > 0, got {getattr(self, name)!r}.")
        if self.reward_form not in ("template", "cost"):
            raise ValueError(f"ClusterModel.reward_form must be 'template' or 'cost', got {self.reward_form!r}.")
        for name in ("cold_start", "knee", "contention", "w_util", "w_slo", "price"):
            if getattr(self, name) < 0:
                raise ValueError(f"ClusterModel.{name} must be >= 0, got {getattr(self, name)!r}.")

    @property
    def max_rate(self) -> float:
        """Requests/s that the largest allocation serves at full utilization, no contention."""
        return self.max_containers * self.max_cpu_steps * self.cpu_step * self.service_rate_per_core


def cpu_pressure(model: ClusterModel, allocated_cores: jax.Array) -> jax.Array:
    """P = mean allocated cores per function / capacity per function."""
    return allocated_cores / model.capacity


def slowdown(model: ClusterModel, pressure: jax.Array) -> jax.Array:
    """1 + contention * max(0, P - knee): the factor every container's service time grows by."""
    return 1.0 + model.contention * jnp.maximum(0.0, pressure - model.knee)


def service_rate(model: ClusterModel, cpu_steps: jax.Array, pressure: jax.Array) -> jax.Array:
    """mu(c, P): requests/s one container with ``cpu_steps`` CPU steps serves."""
    return cpu_steps * model.cpu_step * model.service_rate_per_core / slowdown(model, pressure)


def p99_latency(model: ClusterModel, containers, arrival_rate, rate, iterations: int = 60) -> jax.Array:
    """Exact M/M/n p99 response time (bisection); inf for an unstable queue."""
    return response_time_quantile(0.99, jnp.asarray(containers).astype(jnp.int32), jnp.maximum(arrival_rate, 1e-9),
                                  rate, max_servers=model.max_containers, iterations=iterations)


def cpu_utilization(model: ClusterModel, arrival_rate, containers, cpu_steps, pressure) -> jax.Array:
    """CPU used / CPU allocated = min(lam / (n c cpu_step service_rate_per_core), 1 / slowdown(P)).

    A request's CPU work is 1 / service_rate_per_core core-seconds whatever the contention
    (contention stretches the time, not the work), so the demand side is lam / (n mu(c, 0)).
    A contended node cannot give a container more than its share c cpu_step / slowdown,
    which caps the usage (an overloaded container is busy all the time at that share).
    """
    capacity = containers * cpu_steps * model.cpu_step * model.service_rate_per_core
    return jnp.minimum(arrival_rate / capacity, 1.0 / slowdown(model, pressure))


def function_reward(model: ClusterModel, arrival_rate: jax.Array, containers: jax.Array, cpu_steps: jax.Array,
                    pressure: jax.Array, p99: jax.Array, scaled_out: jax.Array) -> jax.Array:
    """The reward before penalties: the template w_util * utilization + w_slo * SLO preservation,
    or the cost form w_slo * SLO preservation - price * allocated cores (``reward_form``).

    Args:
      arrival_rate: lam, requests/s.
      containers: n after the move.
      cpu_steps: c after the move.
      pressure: P, the mean field.
      p99: the queue's p99 response time.
      scaled_out: 1 where the move added containers (their cold start delays the tail by
        ``cold_start``).
    """
    tail = p99 + scaled_out * model.cold_start
    slo = jnp.where(jnp.isfinite(tail), jnp.minimum(1.0, model.slo / tail), 0.0)
    if model.reward_form == "cost":
        return model.w_slo * slo - model.price * containers * cpu_steps * model.cpu_step
    return model.w_util * cpu_utilization(model, arrival_rate, containers, cpu_steps, pressure) + model.w_slo * slo


@dataclasses.dataclass(frozen=True, eq=False)
class P99Table:
    """p99 of M/M/n by interpolation, for simulating many functions over many steps.

    mu * p99 depends only on (n, rho = lam / (n mu)).  ``values[n - 1, k]`` holds it at
    u_k = -log(1 - rho_k) on a uniform grid of ``u`` in [0, u_max]; lookups interpolate
    linearly in u (relative error < 1e-4 with the default 2048 points, tested).
    """

    values: np.ndarray
    u_max: float

    @classmethod
    def build(cls, max_containers: int, points: int = 2048, u_max: float = 16.0) -> "P99Table":
        u = np.linspace(0.0, u_max, points)
        rho = -np.expm1(-u)
        n = np.arange(1, max_containers + 1)[:, None]
        with jax.enable_x64(True):
            values = response_time_quantile(0.99, jnp.asarray(n * np.ones_like(rho), jnp.int32),
                                            jnp.asarray(n * rho, jnp.float64), jnp.ones((), jnp.float64),
                                            max_servers=max_containers, iterations=100)
            values = np.array(values)
        values[:, 0] = np.log(100.0)             # rho = 0: p99 of one exponential service
        return cls(values, u_max)

    @classmethod
    @functools.lru_cache(maxsize=8)
    def cached(cls, max_containers: int) -> "P99Table":
        """``build`` once per container bound (the table is a static argument of the simulator)."""
        return cls.build(max_containers)

    def __call__(self, containers, arrival_rate, rate):
        n = jnp.asarray(containers).astype(jnp.int32)
        rho = arrival_rate / (n * rate)
        u = -jnp.log1p(-jnp.minimum(rho, 1.0 - 1e-12))
        table = jnp.asarray(self.values, jnp.result_type(rate))
        position = jnp.clip(u, 0.0, self.u_max) * ((table.shape[1] - 1) / self.u_max)
        k = jnp.minimum(position.astype(jnp.int32), table.shape[1] - 2)
        frac = position - k
        row = jnp.clip(n - 1, 0, table.shape[0] - 1)
        scaled = table[row, k] * (1 - frac) + table[row, k + 1] * frac
        return jnp.where(rho < 1.0, scaled / rate, jnp.inf)


def wait_probability(model: ClusterModel, containers, arrival_rate, rate) -> jax.Array:
    """Erlang C with the model's container bound (re-exported for the simulator's metrics)."""
    return erlang_c(jnp.asarray(containers).astype(jnp.int32), arrival_rate / rate, model.max_containers)


def fit_rates_to_cluster(rates: np.ndarray, model: ClusterModel, peak_load: float = 0.5) -> np.ndarray:
    """Trace rates mapped onto the cluster: functions too hot for one function's largest
    allocation are scaled down so that their peak minute is ``peak_load * max_rate``.

    The trace's popularity spans ~8 orders of magnitude; its heaviest functions would be
    served by many replica sets, not by the <= max_containers containers this model
    gives one function.  Scaling only those keeps every function's daily cycle and
    burstiness, and the light functions' absolute rates (most are near idle).

    Args:
      rates: [F, T] requests/s.  peak_load: in (0, 1].
    Returns:
      [F, T] rates with max_t <= peak_load * model.max_rate.
    """
    if not 0.0 < peak_load <= 1.0:
        raise ValueError(f"peak_load must lie in (0, 1], got {peak_load!r}.")
    rates = np.asarray(rates, np.float64)
    peak = rates.max(axis=1, keepdims=True)
    cap = peak_load * model.max_rate
    return rates * np.minimum(1.0, cap / np.maximum(peak, 1e-300))
