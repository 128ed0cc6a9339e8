"""What the trace says about each function at a platform's time resolution: arrivals per
tick, service times, SLOs, and the violations no policy can avoid.

* **Arrivals per tick.**  The trace counts invocations per minute.  Given a minute's
  count n, Poisson arrivals within the minute are uniform, so the counts of its
  k = 60 / dt ticks are Multinomial(n; 1/k, ..., 1/k) (``tick_arrivals``).  For bursty
  triggers the tick shares are drawn from a symmetric Dirichlet(alpha) first
  (Dirichlet-multinomial: the variance of a tick's count grows by (n + alpha k) /
  (1 + alpha k)); alpha -> inf is the Poisson case.  Sequential binomials draw either,
  one row per function, all on device.  The tick simulator takes the rate instead
  (``minute_to_ticks``): n / k per tick, or n times Dirichlet(alpha) shares; its latency
  model is that of Poisson arrivals at that rate.
* **Service times** (``service_means``): the mean of a function's execution time, from
  the durations file's ``Average`` (milliseconds; the trace's durations exclude cold
  starts), in seconds.  A function the file does not cover gets ``DEFAULT_SERVICE_MEAN``
  = 1.0 s, about the median function's average in Shahrad et al. (USENIX ATC 2020,
  Fig. 7: half of the functions average under 1 s).
* **SLOs** (``slo_of``): a multiple of the function's mean service time with a floor,
  slo = max(floor, multiple x mean); defaults 5 x and 0.5 s.  With exponential service
  of mean s the share of requests slower than slo is at least exp(-slo / s) whatever
  the policy does (``violation_floor``; exp(-5) = 0.7% at the default multiple).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DEFAULT_SERVICE_MEAN", "SLO_MULTIPLE", "SLO_FLOOR", "ticks_per_minute", "tick_arrivals",
           "minute_to_ticks",
           "service_means", "slo_of", "violation_floor"]

DEFAULT_SERVICE_MEAN = 1.0
SLO_MULTIPLE = 5.0
SLO_FLOOR = 0.5


def ticks_per_minute(dt: float) -> int:
    """60 / dt, refused unless dt divides a minute (the trace's resolution)."""
    if not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"the tick dt must be a number of seconds > 0, got {dt!r}")
    k = 60.0 / dt
    if abs(k - round(k)) > 1e-9:
        raise ValueError(f"the tick dt = {dt} s does not divide a minute (60 s); allowed: 60 / k seconds for a "
                         f"whole k, e.g. 1, 2, 3, 5, 10, 15, 30, 60")
    return int(round(k))


def tick_arrivals(counts: jax.Array, dt: float, key: jax.Array, dispersion: float | None = None) -> jax.Array:
    """Arrivals per tick [N, M k] from invocations per minute [N, M] (k = 60 / dt).

    Args:
      counts: non-negative integer counts per function and minute.
      dt: the tick (s); must divide 60.
      key: PRNG key (the arrivals are a pure function of it).
      dispersion: None for Poisson arrivals within the minute; alpha > 0 for the
        over-dispersed (Dirichlet-multinomial) option.
    Returns:
      int32 [N, M k]; each minute's ticks sum exactly to its count.
    """
    k = ticks_per_minute(dt)
    counts = jnp.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be [functions, minutes], got shape {counts.shape}")
    if dispersion is not None and not (np.isfinite(dispersion) and dispersion > 0):
        raise ValueError(f"dispersion (the Dirichlet alpha) must be a number > 0 or None, got {dispersion!r}")
    return _tick_arrivals(counts, k, key, None if dispersion is None else float(dispersion))


@functools.partial(jax.jit, static_argnums=(1, 3))
def _tick_arrivals(counts: jax.Array, k: int, key: jax.Array, dispersion: float | None) -> jax.Array:
    share_key, split_key = jax.random.split(key)
    # float carries (the binomial's n); exact for counts below 2^24 a minute in float32
    n = counts.astype(jnp.result_type(float))
    if dispersion is None:
        shares = jnp.full(counts.shape + (k,), 1.0 / k, n.dtype)
    else:
        shares = jax.random.dirichlet(share_key, jnp.full((k,), float(dispersion)), counts.shape)
    # sequential binomials: tick j gets Binomial(remaining, p_j / (p_j + ... + p_k))
    tail = jnp.flip(jnp.cumsum(jnp.flip(shares, -1), -1), -1)
    conditional = jnp.clip(shares / jnp.maximum(tail, 1e-30), 0.0, 1.0).astype(n.dtype)

    def draw(remaining, inputs):
        p, tick_key = inputs
        x = jnp.minimum(jax.random.binomial(tick_key, remaining, p).astype(remaining.dtype), remaining)
        return remaining - x, x

    keys = jax.random.split(split_key, k)
    remaining, ticks = jax.lax.scan(draw, n, (jnp.moveaxis(conditional, -1, 0), keys))
    ticks = jnp.moveaxis(ticks, 0, -1)
    ticks = ticks.at[..., -1].add(remaining)          # p = 1 at the last tick: nothing is left; exact sums
    return ticks.reshape(counts.shape[0], -1).astype(jnp.int32)


def minute_to_ticks(counts: jax.Array, ticks: int, key: jax.Array, dispersion: float | None = None) -> jax.Array:
    """A minute's arrival rate per tick [N, ticks], as expected arrivals per tick, from its
    counts [N]: the tick simulator's input (``mfg.serverless.simulator``).

    Its latency model is that of Poisson arrivals at a known rate within a tick, so a
    minute's n invocations become n / ticks per tick (Poisson within the minute), or,
    with a Dirichlet ``dispersion`` alpha, n p_j with p ~ Dirichlet(alpha) per function
    and minute (a bursty trigger: the rate itself jumps from tick to tick).  Either way
    the minute's total is n.  Jittable (``ticks`` and ``dispersion`` static).
    """
    n = jnp.asarray(counts).astype(jnp.result_type(float))
    if dispersion is None:
        return jnp.broadcast_to(n[:, None] / ticks, n.shape + (ticks,))
    shares = jax.random.dirichlet(key, jnp.full((ticks,), float(dispersion), n.dtype), n.shape)
    return n[:, None] * shares


def service_means(durations: np.ndarray, default: float = DEFAULT_SERVICE_MEAN) -> np.ndarray:
    """Mean service time (s) per function from a trace's ``durations`` [F, 11] (ms; column 0
    the Average; NaN rows: no durations row, ``default`` instead)."""
    durations = np.asarray(durations, np.float64)
    if durations.ndim != 2 or durations.shape[1] < 1:
        raise ValueError(f"durations must be [functions, fields] as mfg.serverless.workloads.Trace holds them, got "
                         f"shape {durations.shape}")
    if not (np.isfinite(default) and default > 0):
        raise ValueError(f"the default service time must be a number of seconds > 0, got {default!r}")
    average = durations[:, 0] / 1000.0
    bad = np.flatnonzero(np.isfinite(average) & (average <= 0))
    if bad.size:
        raise ValueError(f"function {bad[0]} has an average duration of {float(durations[bad[0], 0])!r} ms; a service "
                         f"time must be > 0")
    return np.where(np.isfinite(average), average, default)


def slo_of(service_mean, multiple: float = SLO_MULTIPLE, floor: float = SLO_FLOOR) -> np.ndarray:
    """slo = max(floor, multiple x mean service time), per function (s)."""
    if not (np.isfinite(multiple) and multiple > 0) or not (np.isfinite(floor) and floor >= 0):
        raise ValueError(f"the SLO rule needs multiple > 0 and floor >= 0 (seconds), got {multiple!r}, {floor!r}")
    return np.maximum(floor, multiple * np.asarray(service_mean, np.float64))


def violation_floor(service_mean, slo) -> np.ndarray:
    """exp(-slo / s): the share of requests over the SLO with exponential service of mean
    s, even with no queueing, no cold start and no contention."""
    return np.exp(-np.asarray(slo, np.float64) / np.asarray(service_mean, np.float64))
