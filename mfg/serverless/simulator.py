"""The tick simulator: N functions on one cluster at a platform's time resolution.

Time advances in ticks of dt seconds (``Platform.dt``, 2 s by default: Knative's tick).
Every function i has, at the start of a tick,

  R_i     ready containers, each with ``concurrency`` = k request slots,
  S_i[j]  containers ordered and starting, ready in j ticks (at ``ready_offset`` within
          that tick: a container ordered at time t serves from t + cold_start),
  c_i     cores requested per container (its cpu.shares),
  Q_i[k]  the FIFO backlog: requests waiting (for a slot, or behind the activator when
          R = 0), as per-tick cohorts with their count and mean arrival time, oldest first,

and the trace gives a_i arrivals in the tick, uniform over it (``ArrivalSource``).  A tick:

1. **Decide.**  At its decision instants (its ``period``), the policy sets each
   function's target containers and CPU from what the platform measured in *past* ticks
   (``Measurement``: concurrency, arrivals, CPU usage, latency, ready and starting
   containers, and the cluster's pressure).  It never sees the arrivals it will serve.
   A larger target orders containers (cold starts); a smaller one removes the starting
   ones first, then ready ones.
2. **Contend.**  A request is single-threaded: it runs at one core when it can.  With
   w_i = (q_i + a_i) s_i / dt the work rate function i has (s_i its mean service time at
   one core), its containers want u_i = min(w_i, slots_i) cores; if sum u_i exceeds the
   capacity the node divides it by cpu.shares (``platform.cpu_shares``), and every
   request of function i runs at v_i = min(1, theta c_i / k) cores.  So one slot serves
   mu_i = v_i / s_i requests/s.  The busy slots depend on that speed; the level theta
   is their fixed point (``_contended_speed``, ``Platform.contention_passes`` secant
   steps), at which a waiting backlog keeps every core busy.
3. **Serve.**  Within the tick the slots n(tau) are n0 = k R from the start and
   n0 + n1 (n1 = k S[0]) from ``ready_offset`` phi.  The backlog is a fluid FIFO queue:
   its content Z follows dZ/dtau = lam - n(tau) mu while Z > 0 (lam = a / dt), from
   Z(0) = q = sum Q.  While it is non-empty (from 0 to tau_e, when it clears, or to the
   end of the tick) arrivals join it; a queued request at FIFO position j starts service
   at Cap^-1(j), Cap(tau) = integral of n mu, and its latency is its wait plus an
   Exp(mu) service.  Arrivals after tau_e find no backlog: their response time is the
   stationary M/M/n one (Erlang C, ``ErlangTable``) with the slots of that moment:
     P(T > t) = (1 - C) e^{-mu t} + C (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu),
     E[T] = C / theta + 1 / mu,  theta = n mu - lam.
   Requests still queued at the end of the tick carry over as its cohort.  The
   backlog's count carries a variance (a diffusion approximation: it grows by lam + r per
   second while the backlog waits), which spreads the sampled waits around the fluid
   ones (the histogram only; the means stay the fluid model's).
4. **Account.**  Per function: requests (counted when they start service, or on arrival
   for the M/M/n part), expected SLO violations and latency sum (exact given the model),
   a latency histogram from ``latency_samples`` draws per tick, cold starts, allocated
   core-seconds (ready and starting containers hold their request), used core-seconds
   (the work the departing requests took: s core-seconds each),
   the backlog, and the reward -(violation_cost x violations + price x core-seconds).

``simulate`` runs a whole episode as one jitted ``lax.scan`` over minutes (each drawing
its ticks' arrivals) and ticks, with no host round trip.  docs/serverless.md has the
model's sources; tests/test_simulator_des.py checks it against a request-level
discrete-event simulator on scripted scenarios.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfg.serverless.demand import minute_to_ticks
from mfg.serverless.platform import ErlangTable, Platform, cpu_shares

__all__ = ["Functions", "MinuteCounts", "TickCounts", "TickState", "Measurement", "View", "Result", "simulate",
           "serve_tick", "latency_edges", "initial_state"]


BACKLOG_EPSILON = 1e-3      # requests: a backlog below this is served at once (float round-off)


def latency_edges(bins: int = 60, low: float = 1e-3, high: float = 600.0) -> np.ndarray:
    """[bins + 1] log-spaced latency histogram edges (s); bin 0 holds < low, the last >= high
    (the minute model's edges, reaching 600 s: a backlog's waits outlast its 60 s timeout)."""
    from mfg.serverless.particles import latency_edges as minute_model_edges
    return minute_model_edges(bins, low, high)


# ----------------------------------------------------------------------------- inputs

@functools.partial(jax.tree_util.register_dataclass, data_fields=["service_mean", "slo"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class Functions:
    """What the platform knows of each function.

    Attributes:
      service_mean: [N] mean service time (s) of one request at one core
        (``mfg.serverless.demand.service_means``).
      slo: [N] the latency objective (s) (``mfg.serverless.demand.slo_of``).
    """

    service_mean: jax.Array
    slo: jax.Array

    @property
    def num_functions(self) -> int:
        return int(np.shape(self.service_mean)[0])


@functools.partial(jax.tree_util.register_dataclass, data_fields=["counts", "assignment"],
                   meta_fields=["start", "dispersion"])
@dataclasses.dataclass(frozen=True)
class MinuteCounts:
    """Arrivals from a trace's invocations per minute, spread over its ticks (``minute_to_ticks``).

    Attributes:
      counts: [F, M] invocations per minute of a pool of F functions.
      assignment: [N] the pool function each simulated function replays.
      start: the first minute replayed.
      dispersion: None for Poisson arrivals within the minute; alpha > 0 for bursty ones
        (Dirichlet(alpha) tick shares).
    """

    counts: jax.Array
    assignment: jax.Array
    start: int = 0
    dispersion: float | None = None

    @property
    def num_functions(self) -> int:
        return int(np.shape(self.assignment)[0])

    @property
    def num_minutes(self) -> int:
        return int(np.shape(self.counts)[1]) - self.start

    def minute(self, index, ticks: int, key) -> jax.Array:
        """[N, ticks] arrivals of minute ``index`` (from ``start``)."""
        column = lax.dynamic_index_in_dim(jnp.asarray(self.counts), self.start + index, axis=1, keepdims=False)
        return minute_to_ticks(column[jnp.asarray(self.assignment)], ticks, key, self.dispersion)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["counts"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class TickCounts:
    """Arrivals given per tick: the expected count (rate x dt) [N, T], T a whole number of
    minutes' ticks (scripted scenarios)."""

    counts: jax.Array

    @property
    def num_functions(self) -> int:
        return int(np.shape(self.counts)[0])

    def num_minutes_for(self, ticks: int) -> int:
        return int(np.shape(self.counts)[1]) // ticks

    def minute(self, index, ticks: int, key) -> jax.Array:
        del key
        return lax.dynamic_slice_in_dim(jnp.asarray(self.counts), index * ticks, ticks, axis=1)


# ------------------------------------------------------------------------------ state

class TickState(NamedTuple):
    """The platform's state per function (see the module docstring); [N] unless noted."""

    ready: jax.Array          # containers serving
    starting: jax.Array       # [N, L] containers ready in j ticks
    cpu: jax.Array            # cores requested per container
    queue: jax.Array          # [N, K] waiting requests per cohort, oldest first
    queued_at: jax.Array      # [N, K] their mean arrival time (s)
    queued_spread: jax.Array  # [N, K] the variance of the backlog its requests found on arrival
    occupancy: jax.Array      # mean number of requests in the stochastic part (in service or waiting)
    spread: jax.Array         # the variance of the backlog's count (a diffusion approximation, below)


class Measurement(NamedTuple):
    """What the platform measured over one tick, per function [N] (``pressure`` a scalar).

    arrivals: requests that arrived; concurrency: time-average of in-flight requests
    (waiting, also behind the activator, and in service: Knative's metric); usage: mean
    cores used (the metrics-server's CPU); latency: mean latency of the requests that
    started service (0 if none); started: their count; violations: how many of them miss
    the SLO (what request logs tell); ready, starting: containers at
    the end of the tick; cpu: cores requested per container; pressure: the cores that the
    cluster's busy containers wanted / its capacity (the mean field; > 1 when contended);
    backlog: requests waiting for a slot at the end of the tick (the queue-proxies' and
    the activator's queue depth).
    """

    arrivals: jax.Array
    concurrency: jax.Array
    usage: jax.Array
    latency: jax.Array
    started: jax.Array
    violations: jax.Array
    ready: jax.Array
    starting: jax.Array
    cpu: jax.Array
    pressure: jax.Array
    backlog: jax.Array


class View(NamedTuple):
    """What a policy decides from, besides its own memory of past ``Measurement``s."""

    now: jax.Array            # s since the episode's start
    ready: jax.Array          # [N]
    starting: jax.Array       # [N] containers not ready yet
    cpu: jax.Array            # [N] cores per container
    pressure: jax.Array       # the last tick's pressure


class Result(NamedTuple):
    """An episode's outcome.

    per_function: dict of [N] sums: requests, violations, latency_sum, allocated and used
      (core-seconds), cold_starts, reward, and backlog (requests still waiting at the end).
    histogram: [N, B + 2] latency histogram (counts, ``edges`` of the run).
    series: dict of [M] per-minute cluster values: requests, violations, latency_sum,
      allocated (mean cores), used (mean cores), pressure (mean over the minute's
      ticks), containers (mean per function), backlog (waiting requests at its end).
    policy_state: the policy's final memory.
    state: the platform's final ``TickState``.
    """

    per_function: dict
    histogram: jax.Array
    series: dict
    policy_state: Any
    state: TickState


def initial_state(platform: Platform, num_functions: int, containers=1, cpu=1.0, dtype=jnp.float32) -> TickState:
    """Every function with ``containers`` ready containers of ``cpu`` cores and no backlog."""
    n, K, L = num_functions, platform.backlog_ticks, platform.start_ticks + 1
    ready = jnp.broadcast_to(jnp.asarray(containers, dtype), (n,))
    return TickState(ready, jnp.zeros((n, L), dtype), jnp.broadcast_to(jnp.asarray(cpu, dtype), (n,)),
                     jnp.zeros((n, K), dtype), jnp.zeros((n, K), dtype), jnp.zeros((n, K), dtype),
                     jnp.zeros((n,), dtype), jnp.zeros((n,), dtype))


# ------------------------------------------------------------------------- one tick

def _actuate(platform: Platform, state: TickState, target, cpu):
    """Apply targets: order the missing containers, remove the surplus (starting first)."""
    target = jnp.clip(jnp.asarray(target, state.ready.dtype), 0, platform.max_containers)
    total = state.ready + state.starting.sum(1)
    ordered = jnp.maximum(target - total, 0.0)
    surplus = jnp.maximum(total - target, 0.0)
    starting = state.starting
    columns = []
    for j in reversed(range(starting.shape[1])):          # newest orders are cancelled first
        take = jnp.minimum(surplus, starting[:, j])
        surplus = surplus - take
        columns.append(starting[:, j] - take)
    starting = jnp.stack(columns[::-1], axis=1)
    ready = state.ready - jnp.minimum(surplus, state.ready)
    starting = starting.at[:, platform.start_ticks].add(ordered)
    cpu = jnp.asarray(cpu, state.cpu.dtype)
    return state._replace(ready=ready, starting=starting, cpu=cpu), ordered


def _zeroed_integral(z0, slope, length):
    """integral_0^length max(0, z0 + slope tau) dtau for z0 >= 0 (elementwise)."""
    end = z0 + slope * length
    crossing = jnp.where(slope < 0, z0 / jnp.maximum(-slope, 1e-30), length)
    return jnp.where(end >= 0, 0.5 * length * (z0 + end), 0.5 * z0 * jnp.minimum(crossing, length))


def _response(table: ErlangTable, servers, mu, rho, occupancy, slo):
    """(P(T > slo), E[T], C, theta) of the M/M/n response time in the state of utilization
    ``rho``: an arrival waits with probability C(n, rho), then Exp(theta), theta = n mu (1 - rho).

    Far into the stationary shape's tail (x >> n) the table's rho rounds to 1; there 1 - rho
    comes from the same shape's queue length, C rho / (1 - rho) = x - n rho, instead."""
    servers = jnp.maximum(servers, 1.0)
    rho = jnp.clip(rho, 0.0, 1.0 - 1e-6)
    wait = table(servers, rho)
    slack = jnp.maximum(1.0 - rho, wait * rho / jnp.maximum(occupancy - servers * rho, 1e-6))
    theta = servers * mu * jnp.minimum(slack, 1.0)
    close = jnp.abs(theta - mu) <= 1e-4 * mu
    e_mu = jnp.exp(-mu * slo)
    both = jnp.where(close, (1 + mu * slo) * e_mu, (theta * e_mu - mu * jnp.exp(-theta * slo)) / jnp.where(
        close, 1.0, theta - mu))
    survival = jnp.clip((1 - wait) * e_mu + wait * both, 0.0, 1.0)
    return survival, wait / theta + 1 / mu, wait, theta


def _stochastic_ceiling(table: ErlangTable, servers, lam, mu, rho):
    """The occupancy the stochastic part may hold: below saturation (rho < 1) the stationary
    L(n, rho); above it, n plus the scale of a random walk's excursions against its drift,
    sigma^2 / (2 delta) = (lam + n mu) / (2 (lam - n mu)) (arrivals and departures are
    Poisson; beyond that scale the drift dominates and the backlog is deterministic).  Both
    behave as n mu / |n mu - lam| near rho = 1."""
    below = table.occupancy(servers, jnp.minimum(rho, 1.0 - 1e-4))
    above = servers + (lam + servers * mu) / (2.0 * jnp.maximum(lam - servers * mu, 1e-30))
    return jnp.where(rho < 1.0, below, above)


def _occupancy_step(table: ErlangTable, x, lam, servers, mu, h, iterations: int):
    """x(t + h) of dx/dt = lam - n mu rho(x) (the stationary-shape fluid equation), by
    implicit Euler: x' - x - h lam + h n mu rho(x') = 0, solved by Newton's method (the
    left side is concave and increasing in x', so the iterates converge from any start)."""
    y = x

    def newton(_, y):
        rho, slope = table.utilization_of(servers, y)
        f = y - x - h * lam + h * servers * mu * rho
        return jnp.maximum(y - f / (1.0 + h * servers * mu * slope), 0.0)

    y = jax.lax.fori_loop(0, iterations, newton, y)
    return jnp.where(servers > 0, y, x + h * lam)


def _contended_speed(platform: Platform, table: ErlangTable, cpu, service_mean, x, arriving, waiting, slots,
                     capacity):
    """[N] cores per busy slot at the self-consistent contention (``platform.contention_passes``).

    How many slots are busy depends on how fast they run: a function with a backlog (or no
    ready slot) keeps all ``slots`` busy; one without keeps slots rho(x_end) busy, x_end
    the end of the tick's occupancy step (``_occupancy_step``) at mu = v / s, so that the
    cores they use are the work its departures take.  The cores go by cpu.shares to those
    busy slots (``cpu_shares``): v_i = min(1, theta c_i / k).  So theta is a fixed point of
    the scalar map Theta: theta -> the water-filling level of the busy slots at speeds
    v(theta),  busy_i = slots_i rho(x_end_i(v_i)),  sum_i busy_i min(1, Theta c_i / k) =
    capacity.  Faster slots leave fewer busy, so Theta increases with theta; it may have
    several fixed points (slow slots stay busy and keep each other slow), and the one
    taken is the greatest, the fastest the cluster can serve: theta = inf (every busy slot
    at one core) when the busy slots at full speed fit in the capacity, otherwise the
    limit of the iterates from theta_1 = Theta(inf) down.  Their slope can come close to 1
    (plain iteration then creeps), so after one plain step the root of
    g(y) = log Theta(e^y) - y is found by secant steps, ``contention_passes`` evaluations
    of Theta in all (a step that leaves the iterates' bracket or divides by ~0 falls back
    to the plain iteration y + g).  At the fixed point the busy slots the contention
    assumes are those the service step then keeps busy: the cluster's cores are all used
    while requests wait (work-conserving).
    ``arriving``: the arrival rate the tick's occupancy step takes (0 while queued);
    ``waiting``: [N] bool, a backlog waits.
    """
    k, dt = platform.concurrency, platform.dt
    no_work = jnp.zeros_like(x)
    low, high = math.log(1e-6), math.log(1e6)       # cpu_shares' bracket; inf (uncontended) maps to high

    def busy_at(v):
        x_end = _occupancy_step(table, x, arriving, slots, v / service_mean, dt, platform.occupancy_iterations)
        rho_end, _ = table.utilization_of(slots, x_end)
        return jnp.where(waiting, slots, slots * rho_end)

    def level_of(busy):                             # log of the water-filling level of these busy slots
        theta = cpu_shares(busy, no_work, slots, cpu, capacity, k, platform.contention_iterations)
        return jnp.clip(jnp.log(theta), low, high)

    def level(y):                                   # log Theta(e^y)
        return level_of(busy_at(jnp.minimum(1.0, jnp.exp(y) * cpu / k)))

    def secant_step(y0, g0, y1, g1):
        gap = g1 - g0
        usable = jnp.abs(gap) > 1e-7
        y2 = y1 - g1 * (y1 - y0) / jnp.where(usable, gap, 1.0)
        plain = y1 + g1
        inside = (y2 >= jnp.minimum(jnp.minimum(y0, y1), plain) - 1.0) & (y2 <= jnp.maximum(jnp.maximum(y0, y1),
                                                                                                plain) + 1.0)
        return jnp.clip(jnp.where(usable & inside & jnp.isfinite(y2), y2, plain), low, high)

    def secant(_, iterate):
        y0, g0, y1, g1 = iterate
        y2 = secant_step(y0, g0, y1, g1)
        return y1, g1, y2, level(y2) - y2

    full = busy_at(jnp.ones_like(x))                # evaluation 1: Theta(inf)
    contended = jnp.sum(full) > capacity

    def solve(_):
        y1 = level_of(full)
        if platform.contention_passes == 1:
            return y1
        g1 = level(y1) - y1                         # evaluation 2
        y2 = jnp.clip(y1 + g1, low, high)           # the plain iteration's step
        if platform.contention_passes == 2:
            return y2
        iterate = lax.fori_loop(0, platform.contention_passes - 3, secant, (y1, g1, y2, level(y2) - y2))
        return secant_step(*iterate)                # evaluations 3 .. passes went into it

    y = lax.cond(contended, solve, lambda _: jnp.asarray(high, x.dtype), None)
    return jnp.minimum(1.0, jnp.exp(y) * cpu / k)


def hash_uniforms(seed: jax.Array, counter: jax.Array, shape: tuple[int, int], dtype=jnp.float32) -> jax.Array:
    """Uniforms in (0, 1) of shape [N, c] from a counter-based hash: MurmurHash3's 32-bit
    finalizer (fmix32) of (row, column, counter) mixed with ``seed`` (uint32).

    The tick simulator draws its latency samples this way: a few integer operations per
    number instead of a threefry block, and no key to split per tick.  Its quality is
    that of a good non-cryptographic hash, ample for a histogram.
    """
    rows, columns = shape
    index = (jnp.arange(rows, dtype=jnp.uint32)[:, None] * jnp.uint32(columns)
             + jnp.arange(columns, dtype=jnp.uint32)[None, :])

    def fmix(x):
        x = x ^ (x >> 16)
        x = x * jnp.uint32(0x85EBCA6B)
        x = x ^ (x >> 13)
        x = x * jnp.uint32(0xC2B2AE35)
        return x ^ (x >> 16)

    x = fmix(index * jnp.uint32(0x9E3779B1) + fmix(jnp.asarray(seed, jnp.uint32) ^ (
        jnp.asarray(counter).astype(jnp.uint32) * jnp.uint32(0x27D4EB2F))))
    return ((x >> 8).astype(dtype) + 0.5) * (1.0 / 16777216.0)


def serve_tick(platform: Platform, table: ErlangTable, functions: Functions, state: TickState, arrivals: jax.Array,
               now: jax.Array, uniforms: jax.Array, capacity: float | None = None):
    """Serve one tick (steps 2-4 of the module docstring) after the decision is applied.

    Args:
      state: the platform state with this tick's allocation.
      arrivals: [N] expected arrivals in the tick (rate x dt).
      now: the tick's start (s).
      uniforms: [N, 5 m] uniforms in (0, 1) for the latency samples (``hash_uniforms``).
      capacity: the cluster's cores (default ``platform.capacity``).
    Returns:
      (next state, per-function dict of the tick's sums, Measurement, latency samples
      [N, 2 m] and their weights [N, 2 m]).
    """
    dt, k = platform.dt, platform.concurrency
    phi = platform.ready_offset
    capacity = platform.capacity if capacity is None else capacity
    iterations = platform.occupancy_iterations
    dtype = state.ready.dtype
    s, slo = jnp.asarray(functions.service_mean, dtype), jnp.asarray(functions.slo, dtype)
    uniforms = jnp.asarray(uniforms, dtype)
    a = jnp.asarray(arrivals, dtype)
    lam = a / dt
    new = state.starting[:, 0]
    n0 = state.ready * k
    n1 = new * k
    q = state.queue.sum(1)
    x = state.occupancy

    # 2. contention: every request in service wants one core; the node shares its cores
    # by the busy containers' requests (``cpu_shares``): a busy slot runs at
    # min(1, theta c / k) cores.  The busy slots are all ready ones while a backlog waits,
    # else those the tick's departures keep busy at that speed (the fixed point,
    # ``_contended_speed``); the one-shot estimate (contention_passes 0) takes instead the
    # stationary-shape count n rho(x) at the tick's start, or as many as its work keeps busy
    busy_rho, _ = table.utilization_of(n0, x)
    effective_slots = n0 + n1 * (1 - phi / dt)
    waiting = q > BACKLOG_EPSILON
    busy = jnp.where(waiting, effective_slots, n0 * busy_rho)
    queued = waiting | (n0 <= 0)
    arriving = jnp.where(queued, 0.0, lam)
    if platform.contention_passes:
        speed = _contended_speed(platform, table, state.cpu, s, x, arriving, waiting, effective_slots, capacity)
    else:                                                  # the one-shot estimate
        theta = cpu_shares(busy, a * s / dt, effective_slots, state.cpu, capacity, k, platform.contention_iterations)
        speed = jnp.minimum(1.0, theta * state.cpu / k)
    mu = speed / s

    # 3a. the fluid phase [0, tau_e): while a backlog waits (or no slot is ready), arrivals
    # join it; the stochastic part's requests are ahead of it and drain (no arrivals), and
    # the backlog is served with the slots they leave: n mu minus their departures
    # one implicit step serves both cases: a function with a backlog drains its
    # stochastic part (no arrivals); one without takes the tick's arrivals (below)
    x_step = _occupancy_step(table, x, arriving, effective_slots, mu, dt, iterations)
    drain = jnp.where(queued, x - x_step, 0.0)
    r0 = jnp.maximum(n0 * mu - drain / dt, 0.0)
    r_all = jnp.maximum((n0 + n1) * mu - drain / dt, 0.0)
    tau1 = jnp.where(lam < r0, q / jnp.maximum(r0 - lam, 1e-30), jnp.inf)
    clears_early = queued & (tau1 < phi)
    z_phi = jnp.where(queued & ~clears_early, jnp.maximum(0.0, q + (lam - r0) * phi), 0.0)
    tau2 = jnp.where(lam < r_all, phi + z_phi / jnp.maximum(r_all - lam, 1e-30), jnp.inf)
    tau_e = jnp.where(~queued, 0.0, jnp.where(clears_early, tau1, jnp.minimum(tau2, dt)))
    z_end = jnp.where(queued & ~clears_early & (tau2 >= dt), jnp.maximum(0.0, z_phi + (lam - r_all) * (dt - phi)),
                      0.0)
    a_queued = lam * tau_e
    served = q + a_queued - z_end                          # FIFO positions [0, served) start service

    def depart(j):                                         # Cap^-1(j): when position j starts service
        lo, hi = (r0, r_all) if j.ndim == 1 else (r0[:, None], r_all[:, None])
        before = lo * phi
        late = phi + (j - before) / jnp.maximum(hi, 1e-30)
        # only positions served in this tick are asked for: they start within it (the
        # clip guards the round-off of a served share of ~1e-7 against a rate of ~0)
        return jnp.clip(jnp.where(j < before, j / jnp.maximum(lo, 1e-30), late), 0.0, dt)

    def over_slo(wait, mu, slo):                           # P(wait + Exp(mu) > slo)
        return jnp.where(wait < slo, jnp.exp(-mu * (slo - wait)), 1.0)

    # the old cohorts, oldest first
    before = jnp.cumsum(state.queue, axis=1) - state.queue
    served_k = jnp.clip(served[:, None] - before, 0.0, state.queue)
    wait_k = jnp.maximum(now + depart(before + 0.5 * served_k) - state.queued_at, 0.0)
    # this tick's queued arrivals: position q + x arrived at x / lam
    served_a = jnp.clip(served - q, 0.0, a_queued)
    middle = 0.5 * served_a
    wait_a = jnp.maximum(depart(q + middle) - middle / jnp.maximum(lam, 1e-30), 0.0)
    left_a = a_queued - served_a
    left_at = now + 0.5 * (served_a + a_queued) / jnp.maximum(lam, 1e-30)

    # 3b. the stochastic part: its occupancy drains through the fluid phase, then takes the
    # arrivals of [tau_e, dt) on the slots of that stretch, up to the stationary occupancy
    # of the arrivals' utilization (capped at stochastic_cap); beyond, arrivals overflow
    # into the backlog
    x_drained = x - drain * tau_e / dt
    h = dt - tau_e
    slots = jnp.where(h > 0, (n0 * jnp.maximum(phi - tau_e, 0.0) + (n0 + n1) * (dt - jnp.maximum(tau_e, phi)))
                      / jnp.maximum(h, 1e-30), n0 + n1)
    # without a backlog the implicit step above is this stretch (h = dt); after a backlog
    # clears mid-tick, the rest of the tick is one explicit step from x_drained
    x_after = jnp.maximum(x_drained + h * (lam - slots * mu * busy_rho), 0.0)
    x_free = jnp.where(queued, x_after, x_step)
    rho_in = lam / jnp.maximum(slots * mu, 1e-30)
    ceiling = jnp.maximum(_stochastic_ceiling(table, slots, lam, mu, rho_in), x_drained)
    overflow = jnp.where(slots > 0, jnp.maximum(x_free - ceiling, 0.0), lam * h)
    x_next = jnp.where(slots > 0, x_free - overflow, x_drained)
    a_stochastic = lam * h - overflow
    rho_eff, _ = table.utilization_of(slots, 0.5 * (x_drained + x_next))
    p_s, e_s, c_s, th_s = _response(table, slots, mu, rho_eff, 0.5 * (x_drained + x_next), slo)
    a_stochastic = jnp.where(slots > 0, a_stochastic, 0.0)

    fluid_count = served_k.sum(1) + served_a

    # the backlog's spread: while it waits, its count is a random walk of Poisson arrivals
    # and departures, whose variance grows by (lam + r) per second (a diffusion
    # approximation); at most its mean squared (an exponential's: a walk reflected at 0
    # spreads no wider), and none once it clears
    backlog_end = jnp.sum(state.queue - served_k, axis=1) + left_a + overflow
    grown = state.spread + (lam + r_all) * tau_e + overflow
    next_spread = jnp.where(backlog_end > BACKLOG_EPSILON, jnp.minimum(grown, jnp.square(backlog_end)), 0.0)
    new_spread = 0.5 * (state.spread + next_spread)       # what this tick's queued arrivals found
    violations = (a_stochastic * p_s + (served_k * over_slo(wait_k, mu[:, None], slo[:, None])).sum(1)
                  + served_a * over_slo(wait_a, mu, slo))
    latency_sum = a_stochastic * e_s + (served_k * wait_k).sum(1) + served_a * wait_a + fluid_count / mu
    started = a_stochastic + fluid_count

    # measurements: in-flight requests (backlog, stochastic occupancy) and busy slots
    first = jnp.minimum(tau_e, phi)
    z_int = jnp.where(queued, _zeroed_integral(q, lam - r0, first), 0.0)
    z_int += jnp.where(queued & ~clears_early, _zeroed_integral(z_phi, lam - r_all, jnp.maximum(tau_e - phi, 0.0)),
                       0.0)
    busy_fluid = n0 * jnp.minimum(tau_e, phi) + (n0 + n1) * jnp.maximum(tau_e - phi, 0.0)
    # the busy slot-seconds the stochastic part's departures took (exponential service:
    # each departure used s core-seconds at one core, s / v slot-seconds at v cores)
    departed = jnp.maximum(x_drained + a_stochastic - x_next, 0.0)
    busy_stochastic = departed / jnp.maximum(mu, 1e-30)
    x_mean = (0.5 * (x + x_drained) * tau_e + 0.5 * (x_drained + x_next) * h) / dt
    fluid_busy = (r0 * jnp.minimum(tau_e, phi) + r_all * jnp.maximum(tau_e - phi, 0.0)) / jnp.maximum(mu, 1e-30)
    concurrency = (z_int + fluid_busy) / dt + x_mean
    used = speed * (busy_fluid + busy_stochastic)          # core-seconds

    # latency samples: m per kind, weighted by the kind's count
    m = platform.latency_samples
    shape = a.shape + (m,)
    u_wait, u_exp, u_pos = uniforms[:, :m], uniforms[:, m:2 * m], uniforms[:, 2 * m:3 * m]
    u_service, u_spread = uniforms[:, 3 * m:4 * m], uniforms[:, 4 * m:5 * m]
    service = -jnp.log(jnp.concatenate([u_service, 1.0 - u_service], axis=1)) / mu[:, None]
    stochastic_wait = jnp.where(u_wait < c_s[:, None], -jnp.log1p(-u_exp * (1 - 1e-7)) / th_s[:, None], 0.0)
    position = u_pos * fluid_count[:, None]
    cohort = jnp.sum(position[:, :, None] >= (before + served_k)[:, None, :], axis=2)
    in_old = position < served_k.sum(1, keepdims=True)
    at = jnp.take_along_axis(state.queued_at, jnp.minimum(cohort, state.queue.shape[1] - 1), axis=1)
    # a position in the old cohorts: its cohort's mean arrival; else this tick's x / lam
    offset = position - served_k.sum(1, keepdims=True)
    fluid_wait = jnp.maximum(jnp.where(in_old, now + depart(position) - at,
                                       depart(q[:, None] + offset) - offset / jnp.maximum(lam[:, None], 1e-30)), 0.0)
    # the fluid wait is the mean; a request that waited through d = w r services (r the
    # backlog's service rate) behind a backlog of variance V on arrival waits a random
    # time of variance (d + V) / r^2 (the Poisson departures, and the count it found);
    # drawn as w (1 - c - c log u), a shifted exponential of mean w and coefficient of
    # variation c = sqrt(d + V) / d (at most 1, an exponential's: the wait for one of the
    # busy slots to free)
    found = jnp.where(in_old, jnp.take_along_axis(state.queued_spread, jnp.minimum(cohort, state.queue.shape[1] - 1),
                                                  axis=1), new_spread[:, None])
    services = fluid_wait * r_all[:, None]
    c = jnp.sqrt(jnp.minimum(1.0, (services + found) / jnp.maximum(jnp.square(services), 1e-30)))
    fluid_wait = fluid_wait * (1.0 - c - c * jnp.log(u_spread))
    samples = jnp.concatenate([stochastic_wait, fluid_wait], axis=1) + service
    weights = jnp.concatenate([jnp.broadcast_to((a_stochastic / m)[:, None], shape),
                               jnp.broadcast_to((fluid_count / m)[:, None], shape)], axis=1)

    # 4. the next state: newly ready containers join, the backlog keeps its cohorts (the
    # overflow joins this tick's cohort, arrived in the middle of the stochastic stretch)
    remaining = state.queue - served_k
    merged = remaining[:, 0] + remaining[:, 1]

    def merged_mean(value):                                # over the two oldest cohorts, by count
        return jnp.where(merged > 0, (remaining[:, 0] * value[:, 0] + remaining[:, 1] * value[:, 1])
                         / jnp.maximum(merged, 1e-30), value[:, 1])

    merged_at = merged_mean(state.queued_at)
    newest = left_a + overflow
    newest_at = jnp.where(newest > 0, (left_a * left_at + overflow * (now + tau_e + 0.5 * h))
                          / jnp.maximum(newest, 1e-30), now + dt)
    merged_spread = merged_mean(state.queued_spread)
    queue = jnp.concatenate([merged[:, None], remaining[:, 2:], newest[:, None]], axis=1)
    queued_at = jnp.concatenate([merged_at[:, None], state.queued_at[:, 2:], newest_at[:, None]], axis=1)
    queued_spread = jnp.concatenate([merged_spread[:, None], state.queued_spread[:, 2:], new_spread[:, None]],
                                    axis=1)
    starting = jnp.concatenate([state.starting[:, 1:], jnp.zeros_like(state.starting[:, :1])], axis=1)
    next_state = TickState(state.ready + new, starting, state.cpu, queue, queued_at, queued_spread, x_next,
                           next_spread)

    allocated = (state.ready + state.starting.sum(1)) * state.cpu * dt
    sums = {"requests": started, "violations": violations, "latency_sum": latency_sum, "allocated": allocated,
            "used": used,
            "reward": -(platform.violation_cost * violations + platform.price * allocated)}
    pressure = jnp.sum(jnp.minimum(effective_slots, jnp.maximum(busy, a * s / (dt * speed)))) / capacity
    measurement = Measurement(arrivals=a, concurrency=concurrency, usage=used / dt,
                              latency=latency_sum / jnp.maximum(started, 1e-30) * (started > 0), started=started,
                              violations=violations, ready=next_state.ready, starting=starting.sum(1), cpu=state.cpu,
                              pressure=pressure.astype(dtype), backlog=queue.sum(1))
    return next_state, sums, measurement, samples, weights


# --------------------------------------------------------------------------- episode

def simulate(platform: Platform, functions: Functions, arrivals: MinuteCounts | TickCounts, policy: Any,
             key: jax.Array, *, minutes: int | None = None, initial_containers: Any = 1, initial_cpu: Any = 1.0,
             edges: np.ndarray | None = None, dtype: Any = jnp.float32) -> Result:
    """Run ``policy`` on the platform for ``minutes`` minutes (one jitted scan).

    Args:
      platform: the constants (``Platform``).
      functions: service times and SLOs of the N functions.
      arrivals: ``MinuteCounts`` (a trace) or ``TickCounts`` (scripted), for the same N.
      policy: an object with a ``period`` (s between decisions, a static float) and
        ``init(num_functions, key) -> state``,
        ``decide(state, view, key) -> (containers [N], cpu per container [N], state)``,
        ``record(state, measurement, now) -> state`` (every tick)
        (``mfg.serverless.policies``).
      key: PRNG key (arrivals, latency samples, the policy's own draws).
      minutes: minutes simulated (default: all the arrivals hold).
      initial_containers: everyone's containers at t = 0 (scalar or [N]).
      initial_cpu: everyone's cores per container at t = 0 (scalar or [N]).
      edges: latency histogram edges (default ``latency_edges()``).
    """
    n = functions.num_functions
    if arrivals.num_functions != n:
        raise ValueError(f"the arrivals are for {arrivals.num_functions} functions, the functions {n}")
    k = platform.ticks_per_minute
    available = arrivals.num_minutes if isinstance(arrivals, MinuteCounts) else arrivals.num_minutes_for(k)
    minutes = available if minutes is None else int(minutes)
    if not 1 <= minutes <= available:
        raise ValueError(f"minutes must lie in 1..{available} (what the arrivals hold), got {minutes}")
    period = float(policy.period)
    if not period > 0:
        raise ValueError(f"the policy's period must be > 0 seconds, got {period}")
    largest = max(float(np.max(initial_cpu)), float(np.max(getattr(policy, "cpu", 0.0))))
    if not largest > 0:
        raise ValueError(f"every container needs a CPU request > 0 cores, got {largest}")
    if platform.capacity < largest:
        raise ValueError(f"the cluster's capacity ({platform.capacity} cores) is below one container's CPU request "
                         f"({largest} cores); allowed: a capacity of at least one container")
    edges = tuple(float(e) for e in (latency_edges() if edges is None else np.asarray(edges)))
    table = ErlangTable.build(platform.max_slots)
    # a finite capacity is an argument, not part of the static platform: one compilation
    # serves every cluster size (the settings size the capacity per population and day)
    contended = not math.isinf(platform.capacity)
    static = dataclasses.replace(platform, capacity=1.0) if contended else platform
    capacity = jnp.asarray(platform.capacity if contended else 1.0, jnp.dtype(dtype))
    return _simulate(static, table, functions, arrivals, policy, key, minutes, initial_containers, initial_cpu,
                     edges, jnp.dtype(dtype), capacity)


def _same_types(new, old):
    """``new`` with ``old``'s dtypes (a policy's state must keep its types through the scan,
    whatever precision its rules computed in)."""
    return jax.tree.map(lambda a, b: jnp.asarray(a).astype(jnp.asarray(b).dtype), new, old)


@functools.partial(jax.jit, static_argnums=(0, 1, 6, 9, 10))
def _simulate(platform, table, functions, arrivals, policy, key, minutes, initial_containers, initial_cpu, edges,
              dtype, capacity):
    # ``platform.capacity`` is inf (no contention: the static fast path) or a placeholder
    # for the traced ``capacity``
    capacity = None if math.isinf(platform.capacity) else capacity
    n = functions.num_functions
    k = platform.ticks_per_minute
    dt = platform.dt
    period = float(policy.period)
    functions = Functions(jnp.asarray(functions.service_mean, dtype), jnp.asarray(functions.slo, dtype))
    init_key, run_key = jax.random.split(key)
    state = initial_state(platform, n, initial_containers, initial_cpu, dtype)
    policy_state = policy.init(n, init_key)
    log_edges = jnp.log(jnp.asarray(edges, dtype))
    bins = len(edges) + 1
    zeros = jnp.zeros((n,), dtype)
    totals = {name: zeros for name in ("requests", "violations", "latency_sum", "allocated", "used", "cold_starts",
                                       "reward")}
    histogram = jnp.zeros((n, bins), dtype)
    rows = jnp.arange(n)[:, None]

    m = platform.latency_samples

    def tick(carry, inputs):
        state, policy_state, totals, reservoir, pressure, seed = carry
        index, arrivals_now, tick_key = inputs
        now = index.astype(dtype) * dt
        decide_now = (index == 0) | (jnp.floor(index * dt / period + 1e-6) > jnp.floor((index - 1) * dt / period
                                                                                       + 1e-6))

        def decide(operands):
            state, policy_state = operands
            view = View(now, state.ready, state.starting.sum(1), state.cpu, pressure)
            target, cpu, decided = policy.decide(policy_state, view, tick_key)
            policy_state = _same_types(decided, policy_state)
            state, ordered = _actuate(platform, state, target, cpu)
            return state, policy_state, ordered

        def keep(operands):
            state, policy_state = operands
            return state, policy_state, jnp.zeros_like(state.ready)

        state, policy_state, ordered = lax.cond(decide_now, decide, keep, (state, policy_state))
        uniforms = hash_uniforms(seed, index, (n, 7 * m), dtype)
        state, sums, measurement, samples, weights = serve_tick(platform, table, functions, state, arrivals_now, now,
                                                                uniforms[:, :5 * m], capacity)
        policy_state = _same_types(policy.record(policy_state, measurement, now), policy_state)
        sums["cold_starts"] = ordered
        totals = {name: totals[name] + sums[name] for name in totals}
        # weighted reservoir sampling over the minute: each slot keeps a sample drawn with
        # probability proportional to its tick's weight
        kept, total = reservoir
        total = total + weights
        replace = uniforms[:, 5 * m:] * total < weights
        reservoir = (jnp.where(replace, samples, kept), total)
        per_tick = (jnp.sum(sums["requests"]), jnp.sum(sums["violations"]), jnp.sum(sums["latency_sum"]),
                    jnp.sum(sums["allocated"]), jnp.sum(sums["used"]), measurement.pressure,
                    jnp.sum(state.ready + state.starting.sum(1)))
        return (state, policy_state, totals, reservoir, measurement.pressure, seed), per_tick

    def minute(carry, inputs):
        state, policy_state, totals, histogram, pressure = carry
        index, minute_key = inputs
        arrivals_key, ticks_key, seed_key = jax.random.split(minute_key, 3)
        counts = arrivals.minute(index, k, arrivals_key)            # [N, k]
        tick_index = index * k + jnp.arange(k)
        seed = jax.random.bits(seed_key, dtype=jnp.uint32)
        reservoir = (jnp.zeros((n, 2 * m), dtype), jnp.zeros((n, 2 * m), dtype))
        inner = (state, policy_state, totals, reservoir, pressure, seed)
        inner, per_tick = lax.scan(tick, inner, (tick_index, counts.T, jax.random.split(ticks_key, k)))
        state, policy_state, totals, (kept, weight), pressure, _ = inner
        where = jnp.clip(jnp.searchsorted(log_edges, jnp.log(jnp.maximum(kept, 1e-30)), side="right"), 0, bins - 1)
        histogram = histogram.at[rows, where].add(weight)
        requests, violations, latency_sum, allocated, used, pressures, containers = per_tick
        series = {"requests": requests.sum(), "violations": violations.sum(), "latency_sum": latency_sum.sum(),
                  "allocated": allocated.sum() / 60.0, "used": used.sum() / 60.0, "pressure": pressures.mean(),
                  "containers": containers.mean() / n, "backlog": state.queue.sum()}
        return (state, policy_state, totals, histogram, pressure), series

    carry = (state, policy_state, totals, histogram, jnp.zeros((), dtype))
    carry, series = lax.scan(minute, carry, (jnp.arange(minutes), jax.random.split(run_key, minutes)))
    state, policy_state, totals, histogram, _ = carry
    totals = dict(totals, backlog=state.queue.sum(1))
    return Result(totals, histogram, series, policy_state, state)
