"""M/M/c queueing formulas for function latency (vectorized, jittable).

A function with c identical containers, Poisson arrivals at rate lam and exponential
service at rate mu per container (each container serves one request at a time) is an
M/M/c queue.  With offered load a = lam / mu and utilization rho = a / c < 1:

  Erlang C (probability that a request waits)
      C(c, a) = [a^c / c! * c / (c - a)] / [ sum_{k<c} a^k / k! + a^c / c! * c / (c - a) ]
  mean wait        W_q = C / (c mu - lam)
  mean response    T   = W_q + 1 / mu
  response-time tail: T = S + W with S ~ Exp(mu) and W = 0 w.p. 1 - C, Exp(theta) w.p. C,
      theta = c mu - lam, so
      P(T > t) = (1 - C) e^{-mu t} + C (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu)
      (C (1 + mu t) e^{-mu t} in place of the last term when theta = mu).

Erlang C is computed by the stable recursion on the Erlang B formula,
B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)), C = c B / (c - a (1 - B)), over k up to
``max_servers`` (static), so c may be a traced array.  Unstable queues (rho >= 1) get
C = 1 and infinite waits and latencies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["erlang_c", "mean_wait", "mean_response_time", "response_time_survival", "survival_given_wait",
           "response_time_quantile"]


def erlang_c(servers: jax.Array, offered_load: jax.Array, max_servers: int = 64) -> jax.Array:
    """P(wait > 0) in an M/M/c queue; c = ``servers`` (int array, 1..max_servers), a = lam/mu."""
    c = jnp.asarray(servers)
    a = jnp.asarray(offered_load, jnp.result_type(float, offered_load))

    def erlang_b(k, b):
        b_next = a * b / (k + a * b)
        return jnp.where(k <= c, b_next, b)

    b = lax.fori_loop(1, max_servers + 1, erlang_b, jnp.ones_like(a * c))
    cf = c.astype(a.dtype)
    stable = a < cf
    wait_probability = cf * b / jnp.where(stable, cf - a * (1 - b), 1.0)
    return jnp.where(stable, jnp.clip(wait_probability, 0.0, 1.0), 1.0)


def mean_wait(servers, arrival_rate, service_rate, max_servers: int = 64) -> jax.Array:
    """W_q = C / (c mu - lam) (inf when lam >= c mu)."""
    lam, mu = jnp.asarray(arrival_rate), jnp.asarray(service_rate)
    c = jnp.asarray(servers)
    slack = c * mu - lam
    wait = erlang_c(c, lam / mu, max_servers) / jnp.where(slack > 0, slack, 1.0)
    return jnp.where(slack > 0, wait, jnp.inf)


def mean_response_time(servers, arrival_rate, service_rate, max_servers: int = 64) -> jax.Array:
    """T = W_q + 1 / mu."""
    return mean_wait(servers, arrival_rate, service_rate, max_servers) + 1.0 / jnp.asarray(service_rate)


def survival_given_wait(t, servers, arrival_rate, service_rate, wait_probability) -> jax.Array:
    """P(T > t) of the M/M/c response time for a known Erlang C (all arguments broadcast).

    Lets a caller that needs the tail at many t (a histogram) compute Erlang C once.
    Valid for a stable queue (c mu > lam); t < 0 gives 1.
    """
    lam, mu, c = jnp.asarray(arrival_rate), jnp.asarray(service_rate), jnp.asarray(servers)
    t = jnp.maximum(t, 0.0)
    theta = c * mu - lam
    close = jnp.abs(theta - mu) <= 1e-9 * mu
    safe_gap = jnp.where(close, 1.0, theta - mu)
    both = jnp.where(close, (1 + mu * t) * jnp.exp(-mu * t),
                     (theta * jnp.exp(-mu * t) - mu * jnp.exp(-jnp.maximum(theta, 0.0) * t)) / safe_gap)
    survival = (1 - wait_probability) * jnp.exp(-mu * t) + wait_probability * both
    return jnp.clip(survival, 0.0, 1.0)


def response_time_survival(t, servers, arrival_rate, service_rate, max_servers: int = 64) -> jax.Array:
    """P(T > t) for the M/M/c response time (see the module docstring)."""
    lam, mu = jnp.asarray(arrival_rate), jnp.asarray(service_rate)
    c = jnp.asarray(servers)
    survival = survival_given_wait(t, c, lam, mu, erlang_c(c, lam / mu, max_servers))
    return jnp.where(c * mu - lam > 0, survival, 1.0)


def response_time_quantile(q, servers, arrival_rate, service_rate, max_servers: int = 64,
                           iterations: int = 100) -> jax.Array:
    """The q-quantile of the response time (e.g. q = 0.99 for p99), by bisection.

    The survival function is decreasing; the bracket [0, hi] starts from the quantile of
    the slower of the two exponential phases doubled, which always contains it.
    """
    lam, mu = jnp.asarray(arrival_rate), jnp.asarray(service_rate)
    c = jnp.asarray(servers)
    theta = c * mu - lam
    tail = -jnp.log1p(-jnp.asarray(q))
    slowest = jnp.minimum(mu, jnp.where(theta > 0, theta, mu))
    hi = 4.0 * (tail + 1.0) / slowest
    lo = jnp.zeros_like(hi)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = response_time_survival(mid, c, lam, mu, max_servers) > 1 - q
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = lax.fori_loop(0, iterations, bisect, (lo, hi))
    return jnp.where(theta > 0, 0.5 * (lo + hi), jnp.inf)
