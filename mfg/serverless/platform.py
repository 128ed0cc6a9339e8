"""The platform the tick simulator models: its constants, CPU contention, and Erlang C.

* ``Platform``: the tick dt, the cold start, the per-container concurrency, the cluster's
  CPU capacity, the price of CPU and the simulator's resolution knobs (module
  ``mfg.serverless.simulator`` says how each is used; docs/serverless.md gives sources).
* ``cpu_shares``: how a node divides its cores when the busy containers want more than
  it has (cgroup ``cpu.shares`` semantics, the Linux CFS weight that a Kubernetes CPU
  request sets): a busy single-threaded request wants one core; while the total wanted
  is within the capacity everyone gets what it wants (an idle reservation slows nobody
  down, and a container may use more than its request); beyond it, each busy container
  gets cores in proportion to its shares (its request), never more than it wants:
  weighted max-min fairness (water-filling), min(1, theta c) cores per busy container.
* ``ErlangTable``: Erlang C, P(wait) in M/M/n, tabulated over (n, rho) so that a tick of
  10^5 functions looks it up instead of running the Erlang B recursion per function.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Platform", "cpu_shares", "ErlangTable", "DEFAULT_TICK", "DEFAULT_COLD_START"]

DEFAULT_TICK = 2.0          # s: Knative's autoscaler tick (pkg/autoscaler/scaling/multiscaler.go)
DEFAULT_COLD_START = 1.0    # s: dslab-faas's default container start (reference/serverless.md, section 6)


@dataclasses.dataclass(frozen=True)
class Platform:
    """Constants of the simulated platform (all times in seconds, CPU in cores).

    Attributes:
      dt: the simulation tick; must divide a minute (the trace's resolution).
      cold_start: from the order of a container to its first request (the trace's
        durations exclude it).
      concurrency: requests one container serves at once (1: OpenWhisk's default).
      capacity: the cluster's cores (inf: contention never binds).
      price: cost of one allocated core-second in the reward.
      violation_cost: cost of one request over its SLO in the reward.
      max_containers: the largest size a policy may give one function.
      backlog_ticks: the FIFO backlog is kept as this many per-tick cohorts (older
        waiting requests are merged into the oldest cohort, keeping their mean arrival).
      latency_samples: latencies drawn per function, tick and kind (queued / not) for the
        latency histogram (its quantiles); the means and SLO violations are exact
        expectations and do not depend on it.
      contention_iterations: bisection steps of the water-filling (``cpu_shares``).
      contention_passes: k evaluations (a plain step, then secant steps) towards the
        greatest self-consistent fixed point of a contended tick (busy slots at the speed
        they get, ``simulator._contended_speed``; skipped when they fit at full speed),
        which keeps the cluster's cores busy while requests wait (work-conserving); on the
        reference's contention scenario 3 already agree with 6 to 0.1%, and 4 is the
        default; 0: the busy slots are estimated once per tick, from the occupancy at its
        start and the tick's arriving work (faster, not work-conserving: it overstates
        latency by half there; docs/serverless.md compares both with the reference).
      occupancy_iterations: Newton steps of the stochastic part's implicit step.
    """

    dt: float = DEFAULT_TICK
    cold_start: float = DEFAULT_COLD_START
    concurrency: int = 1
    capacity: float = math.inf
    price: float = 0.0
    violation_cost: float = 1.0
    max_containers: int = 1000
    backlog_ticks: int = 8
    latency_samples: int = 1
    contention_iterations: int = 24
    contention_passes: int = 4
    occupancy_iterations: int = 4

    def __post_init__(self):
        from mfg.serverless.demand import ticks_per_minute
        ticks_per_minute(self.dt)           # the error names the allowed ticks
        checks = [("cold_start", self.cold_start >= 0 and math.isfinite(self.cold_start), "a number of seconds >= 0"),
                  ("concurrency", _is_int(self.concurrency) and self.concurrency >= 1, "an int >= 1"),
                  ("capacity", self.capacity > 0, "a number of cores > 0 (inf: no contention)"),
                  ("price", self.price >= 0 and math.isfinite(self.price), "a number >= 0 per core-second"),
                  ("violation_cost", self.violation_cost >= 0 and math.isfinite(self.violation_cost),
                   "a number >= 0 per request"),
                  ("max_containers", _is_int(self.max_containers) and self.max_containers >= 1, "an int >= 1"),
                  ("backlog_ticks", _is_int(self.backlog_ticks) and self.backlog_ticks >= 2, "an int >= 2"),
                  ("latency_samples", _is_int(self.latency_samples) and self.latency_samples >= 1, "an int >= 1"),
                  ("contention_iterations", _is_int(self.contention_iterations) and self.contention_iterations >= 1,
                   "an int >= 1"),
                  ("contention_passes", _is_int(self.contention_passes) and self.contention_passes >= 0,
                   "an int >= 0"),
                  ("occupancy_iterations", _is_int(self.occupancy_iterations) and self.occupancy_iterations >= 1,
                   "an int >= 1")]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"Platform.{name} = {getattr(self, name)!r} is not allowed; it must be {allowed}")

    @property
    def ticks_per_minute(self) -> int:
        return int(round(60.0 / self.dt))

    @property
    def start_ticks(self) -> int:
        """Whole ticks between a container's order and the tick in which it becomes ready."""
        return int(math.floor(self.cold_start / self.dt + 1e-9))

    @property
    def ready_offset(self) -> float:
        """When, within that tick, it becomes ready (s from the tick's start)."""
        offset = self.cold_start - self.start_ticks * self.dt
        return 0.0 if offset < 1e-9 * self.dt else offset

    @property
    def max_slots(self) -> int:
        return self.max_containers * self.concurrency


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def cpu_shares(busy: jax.Array, work: jax.Array, slots: jax.Array, cpu: jax.Array, capacity: float,
               concurrency: int = 1, iterations: int = 24) -> jax.Array:
    """theta of the cpu.shares water-filling: a busy slot runs at v = min(1, theta c / k) cores.

    Every request in service wants one core (single-threaded) and a container's share is
    its request c, so a busy slot of function i gets v_i(theta) = min(1, theta c_i / k).
    Its busy slots at speed v are B_i(v) = min(slots_i, max(b_i, w_i / v)): at least the
    ``busy`` b_i its queue holds now, and as many as its arriving work w_i (cores at full
    speed) keeps busy at that speed (busy servers follow the offered load within a
    service time).  theta solves sum_i B_i(v_i) v_i = capacity, which increases with theta;
    bisection in log theta (``iterations`` halvings of [1e-6, 1e6]).

    Args:
      busy: [N] busy slots the queues hold now.
      work: [N] cores the arriving work needs at full speed.
      slots: [N] request slots (containers x concurrency).
      cpu: [N] cores requested per container.
      capacity: the cluster's cores.
      concurrency: requests per container.
      iterations: bisection steps.
    Returns:
      theta (scalar); inf when every function gets one core per busy request.
    """
    busy, work, slots = jnp.asarray(busy), jnp.asarray(work), jnp.asarray(slots)
    cpu = jnp.asarray(cpu, busy.dtype)
    if isinstance(capacity, (int, float)) and math.isinf(capacity):      # static: no contention
        return jnp.asarray(jnp.inf, busy.dtype)

    def used(theta):
        v = jnp.minimum(1.0, theta * cpu / concurrency)
        return jnp.sum(jnp.minimum(slots * v, jnp.maximum(busy * v, work)))

    contended = used(jnp.asarray(jnp.inf, busy.dtype)) > capacity

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        over = used(jnp.exp(mid)) > capacity
        return jnp.where(over, lo, mid), jnp.where(over, mid, hi)

    lo, hi = jax.lax.fori_loop(0, iterations, halve, (jnp.log(jnp.asarray(1e-6, busy.dtype)),
                                                      jnp.log(jnp.asarray(1e6, busy.dtype))))
    return jnp.where(contended, jnp.exp(0.5 * (lo + hi)), jnp.inf)


def _erlang_c(n: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Erlang C in float64 (numpy, broadcasting): Erlang B = P(X = n) / P(X <= n),
    X ~ Poisson(a = n rho) (scipy's regularized gamma), then C = n B / (n - a (1 - B))."""
    from scipy.special import gammaincc, gammaln
    a = n * rho
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = n * np.log(np.where(a > 0, a, 1.0)) - a - gammaln(n + 1)
        b = np.where(a > 0, np.exp(log_pmf) / gammaincc(n + 1, a), 0.0)
        c = np.where(rho < 1, n * b / (n - a * (1 - b)), 1.0)
    return np.clip(c, 0.0, 1.0)


@dataclasses.dataclass(frozen=True, eq=False)
class ErlangTable:
    """Erlang C and the stationary M/M/n occupancy, tabulated for the tick simulator.

    * ``erlang[n - 1, j]`` = C(n, rho_j), rho_j = j / (points - 1): P(an arrival waits) at
      utilization rho = lam / (n mu); lookups (``__call__``) interpolate linearly in rho.
    * ``utilization[n - 1, j]``: the inverse of the stationary mean number in system
      L(n, rho) = n rho + C(n, rho) rho / (1 - rho): the rho whose L is x, tabulated at
      g_j = x / (x + n) = j / (points - 1) (``utilization_of``, which also returns
      d rho / d x for Newton's method).  L runs from 0 to inf as rho runs over [0, 1).

    Built in float64 (``_erlang_c``) and stored in float32.  Servers beyond the table use
    its last row, which overstates the wait (C falls with n at a fixed rho).
    """

    erlang: np.ndarray
    utilization: np.ndarray

    @classmethod
    @functools.lru_cache(maxsize=4)
    def build(cls, max_servers: int, points: int = 1025) -> "ErlangTable":
        n = np.arange(1, max_servers + 1, dtype=np.float64)[:, None]
        rho = np.linspace(0.0, 1.0, points)[None, :]
        erlang = _erlang_c(n, rho)
        # L on a grid dense near rho = 1, then inverted at uniform g = L / (L + n)
        fine = 1.0 - (1.0 - np.linspace(0.0, 1.0, 8 * points, endpoint=False)) ** 3
        c = _erlang_c(n, fine[None, :])
        occupancy = n * fine + c * fine / (1.0 - fine)
        g_fine = occupancy / (occupancy + n)
        g = np.linspace(0.0, 1.0, points)
        utilization = np.stack([np.interp(g, g_fine[i], fine, right=1.0) for i in range(max_servers)])
        return cls(erlang.astype(np.float32), utilization.astype(np.float32))

    @staticmethod
    def _lookup(table, servers, fraction):
        points = table.shape[1]
        row = jnp.clip(jnp.round(servers).astype(jnp.int32) - 1, 0, table.shape[0] - 1)
        position = jnp.clip(fraction, 0.0, 1.0) * (points - 1)
        j = jnp.minimum(position.astype(jnp.int32), points - 2)
        frac = position - j
        flat = table.reshape(-1)
        base = row * points + j
        lo, hi = flat[base], flat[base + 1]
        # materialize once: XLA would otherwise copy the gathers into every consumer's fusion
        return jax.lax.optimization_barrier((lo * (1 - frac) + hi * frac, (hi - lo) * (points - 1)))

    def __call__(self, servers: jax.Array, rho: jax.Array) -> jax.Array:
        """C(n, rho) for ``servers`` (>= 1, rounded) and ``rho`` in [0, 1] (clipped)."""
        return self._lookup(jnp.asarray(self.erlang), servers, rho)[0]

    def occupancy(self, servers, rho):
        """L(n, rho), the stationary mean number in system (rho < 1)."""
        c = self(servers, rho)
        return servers * rho + c * rho / (1.0 - rho)

    def utilization_of(self, servers, x):
        """(rho, d rho / d x): the utilization whose stationary mean number in system is x."""
        n = jnp.maximum(jnp.round(servers), 1.0)
        g = x / (x + n)
        rho, slope = self._lookup(jnp.asarray(self.utilization), n, g)
        return rho, slope * n / jnp.square(x + n)
