"""The serverless game, particle form: N functions simulated in parallel on one cluster.

Each particle is one function with a continuous arrival rate, replayed from a trace
(``TraceLoad``) or drawn from the tabular game's load chain (``MarkovLoad``, to check that
the two forms agree).  Every step is one minute (the trace's resolution):

  1. lam_i = the function's arrival rate this minute; the mean field is the population's
     CPU pressure P = mean_i(n_i c_i) cpu_step / capacity (the tabular game's contention
     channel, estimated from the N particles);
  2. every function observes (``Observation``) its rate, allocation, utilization,
     concurrency, latency and last reward, and P; the policy returns its target
     allocation (``Decision``: containers, CPU steps, and whether the move was illegal);
  3. the minute is served with the new allocation: M/M/n latency with the contention
     slowdown and cold starts for added containers (``mfg.serverless.cluster``, the same functions
     as the tabular game), reward as in the tabular game;
  4. per-function accumulators (requests, SLO violations, latency sum and a latency
     histogram, allocated and busy CPU, cold starts, reward) and per-step cluster series
     are updated on device; one ``lax.scan`` runs the whole episode.

Request-level metrics come from the queue's response-time distribution, not from
sampling requests: a minute with lam requests/s adds lam * 60 requests, of which
lam * 60 * P(T > slo) violate the SLO (plus the cold-started ones: one request per added
container pays ``cold_start`` more).  An unstable minute (lam >= n mu) puts every request
at the ``timeout``.  The latency histogram (log-spaced edges) gives the overall and
per-function p50 / p99.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfg.serverless.cluster import (ClusterModel, P99Table, cpu_pressure, cpu_utilization, function_reward, service_rate,
                         wait_probability)
from mfg.serverless.game import IN, NONE, OUT, move_direction
from mfg.serverless.queueing import survival_given_wait

__all__ = ["TraceLoad", "MarkovLoad", "Observation", "Decision", "ParticleResult", "simulate", "simulate_clusters",
           "observe", "serve", "zero_accumulators", "accumulate", "latency_edges", "STEP_SECONDS"]

STEP_SECONDS = 60.0


def latency_edges(bins: int = 48, low: float = 1e-3, high: float = 60.0) -> np.ndarray:
    """[bins + 1] log-spaced latency histogram edges (s); the last bin collects >= high."""
    return np.geomspace(low, high, bins + 1)


# ------------------------------------------------------------------------- load processes

def _active_pool(rates: np.ndarray) -> np.ndarray:
    """The rows of a [F, T] rate pool with any traffic (a clear error when there are none)."""
    rates = np.asarray(rates)
    active = np.flatnonzero(rates.sum(1) > 0)
    if active.size == 0:
        raise ValueError("the trace has no function with any invocation.")
    return rates[active]


@functools.partial(jax.tree_util.register_dataclass, data_fields=["rates", "assignment"], meta_fields=["start"])
@dataclasses.dataclass(frozen=True)
class TraceLoad:
    """Each function replays its own per-minute rate series.

    Attributes:
      rates: [F, T] requests/s of a pool of F functions (``mfg.serverless.cluster.fit_rates_to_cluster``).
      assignment: [N] the pool function each particle replays.
      start: first minute replayed.
    """

    rates: np.ndarray
    assignment: np.ndarray
    start: int = 0

    @classmethod
    def sample(cls, rates: np.ndarray, num_functions: int, seed: int = 0, start: int = 0) -> "TraceLoad":
        """N particles over the pool's active functions (without replacement when N <= F)."""
        pool = _active_pool(rates)
        rng = np.random.default_rng(seed)
        replace = num_functions > pool.shape[0]
        return cls(pool, rng.choice(pool.shape[0], size=num_functions, replace=replace), start)

    @classmethod
    def partition(cls, rates: np.ndarray, num_functions: int, clusters: int, seed: int | tuple[int, ...] = 0,
                  start: int = 0) -> list["TraceLoad"]:
        """``clusters`` loads of N functions that together replay every active pool function
        equally often (the pool tiled to R N particles, shuffled, cut into R clusters).

        Each cluster is a uniform sample of the pool; their union is the same multiset for
        every split of the same R N, so ``partition(rates, N, R)`` and
        ``partition(rates, R N, 1)`` hold exactly the same functions: comparing them
        isolates the effect of the cluster size N (``simulate_clusters``).
        """
        if int(num_functions) < 1 or int(clusters) < 1:
            raise ValueError(f"num_functions and clusters must be positive ints, got {num_functions} and {clusters}.")
        pool = _active_pool(rates)
        total = int(num_functions) * int(clusters)
        tiled = np.resize(np.arange(pool.shape[0]), total)      # every function total / F times (+-1)
        shuffled = np.random.default_rng(seed).permutation(tiled)
        return [cls(pool, part, start) for part in shuffled.reshape(int(clusters), int(num_functions))]

    @property
    def num_functions(self) -> int:
        return self.assignment.shape[0]

    @property
    def num_steps(self) -> int:
        return self.rates.shape[1] - self.start

    def init(self, key):
        del key
        return ()

    def rate(self, state, t):
        column = lax.dynamic_index_in_dim(jnp.asarray(self.rates), self.start + t, axis=1, keepdims=False)
        return column[jnp.asarray(self.assignment)]

    def advance(self, state, key):
        del key
        return state


@functools.partial(jax.tree_util.register_dataclass, data_fields=["levels", "chain", "initial"],
                   meta_fields=["num_functions", "num_steps"])
@dataclasses.dataclass(frozen=True)
class MarkovLoad:
    """Rates from the tabular game's load chain: lam = levels[l], l' ~ chain[l, .]."""

    levels: np.ndarray
    chain: np.ndarray
    initial: np.ndarray
    num_functions: int
    num_steps: int

    def init(self, key):
        return jax.random.choice(key, len(self.levels), (self.num_functions,), p=jnp.asarray(self.initial))

    def rate(self, state, t):
        return jnp.asarray(self.levels)[state]

    def advance(self, state, key):
        cumulative = jnp.cumsum(jnp.asarray(self.chain), axis=1)[state]
        u = jax.random.uniform(key, state.shape + (1,), cumulative.dtype)
        return jnp.minimum(jnp.sum(u > cumulative, axis=1), len(self.levels) - 1)


# ---------------------------------------------------------------------- policy interface

class Observation(NamedTuple):
    """What every function sees when it decides (all [N] except ``pressure``, a scalar).

    rate: requests/s this minute; containers, cpu_steps: current allocation; last_move:
    0 none, 1 out, 2 in; utilization and concurrency (lam E[T], in-flight requests) and
    p99 under the current allocation; reward: the previous step's reward; pressure: the
    mean field, the cluster's allocated CPU / capacity.
    """

    rate: jax.Array
    containers: jax.Array
    cpu_steps: jax.Array
    last_move: jax.Array
    utilization: jax.Array
    concurrency: jax.Array
    p99: jax.Array
    reward: jax.Array
    pressure: jax.Array


class Decision(NamedTuple):
    """Target allocation per function ([N] int32) and whether the move was illegal ([N] bool)."""

    containers: jax.Array
    cpu_steps: jax.Array
    illegal: jax.Array


class ParticleResult(NamedTuple):
    """Accumulated outcome of an episode (device arrays; see ``mfg.serverless.evaluation`` for metrics).

    per_function: dict of [N] sums over the episode (requests, violations, latency_sum,
      allocated, busy (core-minutes), cold_starts, reward, illegal, oscillations) and
      ``histogram`` [N, B] request counts per latency bin.
    series: dict of [T] cluster series (pressure, allocated, violations, requests, reward,
      containers, cpu_steps).
    policy_state: the policy's final state (learning policies return what they learned).
    """

    per_function: dict
    series: dict
    policy_state: Any


def _survival(t, n, lam, mu, wait):
    """P(T > t) per function [N] at the times ``t`` [N, K] (Erlang C ``wait`` computed once)."""
    return survival_given_wait(t, n[:, None], lam[:, None], mu[:, None], wait[:, None])


def _mean_response(n, lam, mu, wait, timeout):
    """E[T] = C / (n mu - lam) + 1 / mu, or the timeout for an unstable queue."""
    stable = lam < n * mu
    return jnp.where(stable, wait / jnp.where(stable, n * mu - lam, 1.0) + 1 / mu, timeout)


def simulate(model: ClusterModel, load: TraceLoad | MarkovLoad, policy: Any, key: jax.Array, *, num_steps: int | None = None,
             initial_containers: int = 1, initial_cpu_steps: int = 1, edges: np.ndarray | None = None,
             p99_table: P99Table | None = None, dtype: Any = jnp.float32) -> ParticleResult:
    """Run ``policy`` for ``num_steps`` minutes on ``load`` (one jitted ``lax.scan``).

    Args:
      model: the cluster constants (shared with the tabular game).
      load: ``TraceLoad`` or ``MarkovLoad`` (N functions).
      policy: an object with ``init(num_functions, key) -> state`` and
        ``decide(state, observation, key) -> (Decision, state)`` (``mfg.serverless.autoscalers``).
      key: PRNG key (policy sampling, load chain).
      num_steps: minutes to simulate (default: the whole load series).
      initial_containers: everyone's containers at t = 0.
      initial_cpu_steps: everyone's CPU steps per container at t = 0.
      edges: latency histogram edges (default ``latency_edges()``).
      p99_table: interpolated p99 (default built for the model's container bound).
    """
    num_steps = int(load.num_steps if num_steps is None else num_steps)
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    if num_steps > load.num_steps:
        raise ValueError(f"num_steps={num_steps} is longer than the load series ({load.num_steps} minutes).")
    for name, value, bound in [("initial_containers", initial_containers, model.max_containers),
                               ("initial_cpu_steps", initial_cpu_steps, model.max_cpu_steps)]:
        if not 1 <= int(value) <= bound:
            raise ValueError(f"{name} must lie in 1..{bound}, got {value}.")
    edges = tuple(float(e) for e in (latency_edges() if edges is None else np.asarray(edges)))
    table = P99Table.cached(model.max_containers) if p99_table is None else p99_table
    return _simulate(model, load, policy, key, num_steps, int(initial_containers), int(initial_cpu_steps),
                     edges, table, jnp.dtype(dtype))


def simulate_clusters(model: ClusterModel, loads: list[TraceLoad], policy: Any, key: jax.Array, *,
                      num_steps: int | None = None, **options: Any) -> ParticleResult:
    """R independent clusters, one per load, simulated together (``vmap`` of ``simulate``).

    Each cluster has its own N functions and its own mean field (its pressure is computed
    over its own functions), so this estimates the expectation of a metric *at size N*
    from R samples in one compiled scan: R N function-steps cost about what one cluster of
    R N functions does.  ``mfg.serverless.evaluation.pool_clusters`` merges the result into one
    population for the metrics.

    Args:
      loads: R ``TraceLoad`` over the same rate pool (same ``rates`` array and ``start``),
        each with N functions (e.g. ``TraceLoad.partition``).
      key: split into one key per cluster.
      options: ``simulate``'s keyword arguments (initial allocation, edges, table, dtype).
    Returns:
      ``ParticleResult`` whose arrays have a leading [R] axis.
    """
    if not loads:
        raise ValueError("simulate_clusters needs at least one load.")
    first = loads[0]
    for load in loads:
        if not isinstance(load, TraceLoad):
            raise TypeError(f"simulate_clusters takes TraceLoad loads, got {type(load).__name__}.")
        if load.rates is not first.rates and not np.array_equal(load.rates, first.rates):
            raise ValueError("every load of simulate_clusters must replay the same rate pool (rates).")
        if load.start != first.start or load.num_functions != first.num_functions:
            raise ValueError(f"every load of simulate_clusters must have the same start and number of functions; "
                             f"got (start, N) = {(load.start, load.num_functions)} and "
                             f"{(first.start, first.num_functions)}.")
    assignments = jnp.asarray(np.stack([load.assignment for load in loads]))
    rates = jnp.asarray(first.rates)

    def one_cluster(assignment, cluster_key):
        load = TraceLoad(rates, assignment, first.start)
        return simulate(model, load, policy, cluster_key, num_steps=num_steps, **options)

    return jax.vmap(one_cluster)(assignments, jax.random.split(key, len(loads)))


def observe(model: ClusterModel, table: P99Table, lam, n, c, m, last_reward, dtype=jnp.float32) -> Observation:
    """What every function sees at the start of a minute (arrays [N]; see ``Observation``)."""
    pressure = cpu_pressure(model, jnp.mean(n * c) * model.cpu_step).astype(dtype)
    mu_now = service_rate(model, c.astype(dtype), pressure)
    mean_t_now = _mean_response(n, lam, mu_now, wait_probability(model, n, lam, mu_now), model.timeout)
    return Observation(
        rate=lam, containers=n, cpu_steps=c, last_move=m,
        utilization=cpu_utilization(model, lam, n, c.astype(dtype), pressure),
        concurrency=lam * jnp.minimum(mean_t_now, model.timeout),
        p99=table(n, lam, mu_now), reward=last_reward, pressure=pressure)


def serve(model: ClusterModel, table: P99Table, edges: jax.Array, observation: Observation, decision: Decision,
          dtype=jnp.float32):
    """Serve one minute with the decided allocation.

    It returns the tuple ``(n_next, c_next, m_next, reward, per_step, histogram, series)``:
    the new allocation and last move, the reward [N], the per-function sums of the minute
    (``ParticleResult`` keys) and its latency histogram [N, B + 1], and the minute's
    cluster series.

    Args:
      observation: the minute's ``observe`` (rate, allocation before the decision, pressure).
      decision: target containers and CPU steps ([N], clamped here to the model's bounds).
    """
    lam, n, c, m, pressure = (observation.rate, observation.containers, observation.cpu_steps,
                              observation.last_move, observation.pressure)
    dt = STEP_SECONDS
    n_next = jnp.clip(decision.containers, 1, model.max_containers).astype(jnp.int32)
    c_next = jnp.clip(decision.cpu_steps, 1, model.max_cpu_steps).astype(jnp.int32)
    direction = move_direction(n, c, n_next, c_next)
    reverses = ((m == OUT) & (direction == IN)) | ((m == IN) & (direction == OUT))
    m_next = jnp.where(direction == NONE, m, direction)

    mu = service_rate(model, c_next.astype(dtype), pressure)
    added = jnp.maximum(n_next - n, 0).astype(dtype)
    p99 = table(n_next, lam, mu)
    reward = function_reward(model, lam, n_next, c_next.astype(dtype), pressure, p99, (added > 0).astype(dtype))
    reward = jnp.where(decision.illegal, model.illegal_penalty,
                       reward + jnp.where(reverses, model.oscillation_penalty, 0.0))
    stable = lam < n_next * mu
    wait = wait_probability(model, n_next, lam, mu)
    mean_t = _mean_response(n_next, lam, mu, wait, model.timeout)
    requests = lam * dt
    cold = jnp.minimum(added, requests)                        # requests that met a cold container
    warm = requests - cold
    shifted = jnp.stack([jnp.full_like(lam, model.slo), jnp.full_like(lam, model.slo - model.cold_start)], -1)
    slo_tail = _survival(shifted, n_next, lam, mu, wait)        # [N, 2]
    violations = jnp.where(stable, warm * slo_tail[:, 0] + cold * slo_tail[:, 1], requests)
    latency_sum = jnp.where(stable, requests * mean_t + cold * model.cold_start, requests * model.timeout)
    cdf_warm = 1 - _survival(edges[None, :], n_next, lam, mu, wait)
    cdf_cold = 1 - _survival(edges[None, :] - model.cold_start, n_next, lam, mu, wait)
    cdf = warm[:, None] * cdf_warm + cold[:, None] * cdf_cold    # [N, B + 1] requests below each edge
    in_bins = jnp.diff(cdf, axis=1, prepend=jnp.zeros_like(cdf[:, :1]))
    histogram = jnp.concatenate([in_bins, (requests - cdf[:, -1])[:, None]], axis=1)
    histogram = jnp.where(stable[:, None], histogram, jnp.zeros_like(histogram).at[:, -1].set(requests))
    allocated = (n_next * c_next).astype(dtype) * model.cpu_step
    busy = allocated * cpu_utilization(model, lam, n_next, c_next.astype(dtype), pressure)   # cores used
    per_step = {
        "requests": requests, "violations": violations, "latency_sum": latency_sum,
        "allocated": allocated, "busy": busy, "cold_starts": added, "reward": reward,
        "illegal": decision.illegal.astype(dtype), "oscillations": reverses.astype(dtype),
    }
    series = {"pressure": pressure, "allocated": jnp.mean(allocated), "violations": jnp.sum(violations),
              "requests": jnp.sum(requests), "reward": jnp.mean(reward),
              "containers": jnp.mean(n_next.astype(dtype)), "cpu_steps": jnp.mean(c_next.astype(dtype))}
    return n_next, c_next, m_next, reward, per_step, histogram, series


ACCUMULATORS = ("requests", "violations", "latency_sum", "allocated", "busy", "cold_starts", "reward", "illegal",
                "oscillations")


def zero_accumulators(num_functions: int, num_edges: int, dtype=jnp.float32) -> dict:
    """Per-function sums at the start of an episode (``ParticleResult.per_function``)."""
    acc = {k: jnp.zeros((num_functions,), dtype) for k in ACCUMULATORS}
    acc["histogram"] = jnp.zeros((num_functions, num_edges + 1), dtype)
    return acc


def accumulate(acc: dict, per_step: dict, histogram: jax.Array) -> dict:
    return {k: acc[k] + per_step[k] for k in ACCUMULATORS} | {"histogram": acc["histogram"] + histogram}


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7, 8, 9))
def _simulate(model, load, policy, key, num_steps, n0, c0, edges, table, dtype):
    N = load.num_functions
    edges = jnp.asarray(edges, dtype)
    load_key, policy_key, run_key = jax.random.split(key, 3)

    def step(carry, t):
        n, c, m, load_state, policy_state, last_reward, acc = carry
        step_key = jax.random.fold_in(run_key, t)
        decide_key, load_key_t = jax.random.split(step_key)
        lam = load.rate(load_state, t).astype(dtype)
        observation = observe(model, table, lam, n, c, m, last_reward, dtype)
        decision, policy_state = policy.decide(policy_state, observation, decide_key)
        n_next, c_next, m_next, reward, per_step, histogram, series = serve(model, table, edges, observation,
                                                                            decision, dtype)
        load_state = load.advance(load_state, load_key_t)
        return (n_next, c_next, m_next, load_state, policy_state, reward, accumulate(acc, per_step, histogram)), series

    carry = (jnp.full((N,), n0, jnp.int32), jnp.full((N,), c0, jnp.int32), jnp.full((N,), NONE, jnp.int32),
             load.init(load_key), policy.init(N, policy_key), jnp.zeros((N,), dtype),
             zero_accumulators(N, edges.shape[0], dtype))
    (_, _, _, _, policy_state, _, acc), series = lax.scan(step, carry, jnp.arange(num_steps))
    return ParticleResult(acc, series, policy_state)
