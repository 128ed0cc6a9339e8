"""The serverless cluster MFG, tabular form: functions competing for a shared cluster.

Each agent is one function.  Its state is (load bin l, containers n, CPU step c, last
move m):

* l in 0..L-1: the arrival rate lam_l (requests/s), a Markov chain P_load[l, l'] fitted
  from a workload (``fit_load_chain``; by default from the shipped Azure-format sample);
* n in 1..N_max containers and c in 1..C_max CPU steps per container (each step is
  ``cpu_step`` cores, e.g. 128 cpu-shares = 1/8 core);
* m in {none, out, in}: the direction of the last scaling move (to penalize
  oscillation: out then in, or in then out).

Actions (the five of the FIRM / MA-PPO template): 0 no-op, 1 +1 container, 2 -1
container, 3 +1 CPU step, 4 -1 CPU step.  A move past a bound is illegal: nothing
changes and the reward is ``illegal_penalty`` (-1).

Mean field and contention.  The cluster has ``capacity`` cores per function.  The
population's CPU pressure is

    pressure(L) = sum_{s} mu(s) n(s) c(s) cpu_step / capacity      (allocated / capacity)

and every function's per-container service rate is scaled down once the pressure passes
a knee:  mu_eff = c cpu_step * service_rate_per_core / (1 + contention * max(0, pressure - knee)).

Latency: M/M/n (``mfg.queueing``) with arrival rate lam_l and n containers of rate mu_eff;
the tail latency is its p99 response time plus ``cold_start`` seconds when the action adds
a container.  SLO preservation = min(1, slo / p99); utilization = lam / (n mu_eff) capped
at 1 (0 when the queue is unstable is not used: an unstable queue has p99 = inf and SLO
preservation 0).

Reward (configurable weights): r = w_util * utilization + w_slo * SLO preservation,
replaced by ``illegal_penalty`` for an illegal move, and ``oscillation_penalty`` added
for a move that reverses the last one.

Stationary discounted by default (gamma 0.9): the paper's setting.  S = L N_max C_max 3.
"""

from __future__ import annotations


from typing import Any

import jax.numpy as jnp
import numpy as np

from mfg.game import MeanFieldGame, make_game
from mfg.games._common import fixed_kernel, stationary_discount
from mfg.queueing import response_time_quantile

__all__ = ["serverless", "fit_load_chain", "ACTIONS", "decode_states"]

ACTIONS = ("no-op", "+1 container", "-1 container", "+1 cpu step", "-1 cpu step")
NONE, OUT, IN = 0, 1, 2


def fit_load_chain(rates: np.ndarray, num_bins: int = 6, smoothing: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Load levels and a Markov chain fitted from per-minute arrival rates.

    Args:
      rates: [F, T] arrival rates (requests/s) of F functions over T minutes; only
        functions with some traffic are used.
      num_bins: L, load bins with edges at quantiles of the positive rates (log scale).
      smoothing: add-``smoothing`` (Laplace) counts to every transition.
    Returns:
      (levels [L] representative rate of each bin (its mean), chain [L, L] row-stochastic).
    """
    rates = np.asarray(rates, np.float64)
    active = rates[rates.sum(1) > 0]
    if active.size == 0:
        raise ValueError("fit_load_chain needs at least one function with non-zero rates.")
    positive = active[active > 0]
    edges = np.quantile(np.log(positive), np.linspace(0, 1, num_bins + 1)[1:-1])
    bins = np.where(active > 0, np.searchsorted(edges, np.log(np.where(active > 0, active, 1.0))), 0)
    levels = np.array([active[bins == b].mean() if np.any(bins == b) else 0.0 for b in range(num_bins)])
    counts = np.full((num_bins, num_bins), smoothing)
    np.add.at(counts, (bins[:, :-1].reshape(-1), bins[:, 1:].reshape(-1)), 1.0)
    return levels, counts / counts.sum(1, keepdims=True)


def _default_chain(num_bins):
    from mfg.workloads import SAMPLE_DIR, read_trace

    trace = read_trace(SAMPLE_DIR)
    return fit_load_chain(trace.rates_per_second(), num_bins)


def decode_states(max_containers: int, max_cpu_steps: int, num_bins: int):
    """[S, 4] (load bin, containers, cpu steps, last move) of every state index."""
    l, n, c, m = np.meshgrid(np.arange(num_bins), np.arange(1, max_containers + 1),
                             np.arange(1, max_cpu_steps + 1), np.arange(3), indexing="ij")
    return np.stack([l.reshape(-1), n.reshape(-1), c.reshape(-1), m.reshape(-1)], axis=1)


def _reward(params, t, mu):
    states = params["states"]                                       # [S, 4] as floats
    n, c = states[:, 1], states[:, 2]
    allocated = jnp.dot(mu, n * c) * params["cpu_step"]
    pressure = allocated / params["capacity"]
    slowdown = 1.0 + params["contention"] * jnp.maximum(0.0, pressure - params["knee"])
    lam = params["levels"][params["load_bin"]]                      # [S]

    def per_action(dn, dc, cold):
        n_next = jnp.clip(n + dn, 1, params["max_containers"])
        c_next = jnp.clip(c + dc, 1, params["max_cpu_steps"])
        service = c_next * params["cpu_step"] * params["service_rate_per_core"] / slowdown
        p99 = response_time_quantile(0.99, n_next.astype(jnp.int32), jnp.maximum(lam, 1e-9), service,
                                     max_servers=params["max_containers_static"], iterations=60)
        p99 = p99 + cold * params["cold_start"]
        slo = jnp.where(jnp.isfinite(p99), jnp.minimum(1.0, params["slo"] / p99), 0.0)
        util = jnp.minimum(1.0, lam / (n_next * service))
        return params["w_util"] * util + params["w_slo"] * slo

    moves = params["moves"]                                         # [A, 3] (dn, dc, cold)
    base = jnp.stack([per_action(moves[a, 0], moves[a, 1], moves[a, 2]) for a in range(moves.shape[0])], axis=1)
    return jnp.where(params["illegal"], params["illegal_penalty"], base + params["oscillation"])


def serverless(
    max_containers: int = 8, max_cpu_steps: int = 8, num_load_bins: int = 6, levels: Any = None,
    load_chain: Any = None,
    cpu_step: float = 0.125, service_rate_per_core: float = 8.0, slo: float = 0.5, cold_start: float = 0.3,
    capacity: float = 4.0, knee: float = 0.7, contention: float = 4.0, w_util: float = 0.3, w_slo: float = 0.7,
    illegal_penalty: float = -1.0, oscillation_penalty: float = -1.0, horizon: int | None = None,
    discount: float | None = None, kernel: str = "pull", dtype=None,
) -> MeanFieldGame:
    """The tabular serverless game (see the module docstring); S = L N_max C_max 3, A = 5.

    Args:
      levels: load levels [L] (requests/s); default (with ``load_chain``): fitted from
        the shipped Azure-format sample with ``num_load_bins`` bins.
      load_chain: [L, L] row-stochastic load transition matrix.
      cpu_step: cores per CPU step; service_rate_per_core: requests/s one core serves.
      slo: latency objective on p99 (s); cold_start: extra seconds when scaling out.
      capacity: cluster cores per function; knee, contention: the slowdown past the knee.
    """
    if levels is None or load_chain is None:
        levels, load_chain = _default_chain(num_load_bins)
    levels, load_chain = np.asarray(levels, np.float64), np.asarray(load_chain, np.float64)
    L = len(levels)
    if load_chain.shape != (L, L) or np.any(load_chain < 0) or not np.allclose(load_chain.sum(1), 1.0):
        raise ValueError(f"load_chain must be a row-stochastic [L, L] = [{L}, {L}] matrix.")
    for name, value in [("max_containers", max_containers), ("max_cpu_steps", max_cpu_steps)]:
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive int, got {value}.")
    states = decode_states(max_containers, max_cpu_steps, L)
    S, A = len(states), len(ACTIONS)
    l, n, c, m = states.T
    # (dn, dc, cold start) of each action; a move's direction for the oscillation flag.
    moves = np.array([[0, 0, 0], [1, 0, 1], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], np.float64)
    direction = np.array([NONE, OUT, IN, OUT, IN])
    n_next = n[:, None] + moves[None, :, 0].astype(int)
    c_next = c[:, None] + moves[None, :, 1].astype(int)
    illegal = (n_next < 1) | (n_next > max_containers) | (c_next < 1) | (c_next > max_cpu_steps)
    n_next = np.where(illegal, n[:, None], n_next)
    c_next = np.where(illegal, c[:, None], c_next)
    m_next = np.where(illegal, m[:, None], np.where(direction[None, :] == NONE, m[:, None], direction[None, :]))
    reverses = ((m[:, None] == OUT) & (direction[None, :] == IN)) | ((m[:, None] == IN) & (direction[None, :] == OUT))
    oscillation = np.where(reverses & ~illegal, oscillation_penalty, 0.0)

    def index(l_, n_, c_, m_):
        return ((l_ * max_containers + (n_ - 1)) * max_cpu_steps + (c_ - 1)) * 3 + m_

    next_state = np.stack([index(np.full_like(n_next, l2), n_next, c_next, m_next) for l2 in range(L)], axis=-1)
    probs = load_chain[l][:, None, :].repeat(A, axis=1)                       # [S, A, L]
    kernel_params, transition_fn = fixed_kernel(kernel, next_state, probs)
    params = {
        "states": states.astype(np.float64), "load_bin": l.astype(np.int32), "levels": levels,
        "moves": moves, "illegal": illegal, "oscillation": oscillation,
        "cpu_step": cpu_step, "service_rate_per_core": service_rate_per_core, "slo": slo,
        "cold_start": cold_start, "capacity": capacity, "knee": knee, "contention": contention,
        "w_util": w_util, "w_slo": w_slo, "illegal_penalty": illegal_penalty,
        "max_containers": float(max_containers), "max_cpu_steps": float(max_cpu_steps),
        **kernel_params,
    }
    stationary = np.linalg.matrix_power(load_chain.T, 200) @ np.full(L, 1.0 / L)
    start = np.zeros(S)
    start[index(np.arange(L), 1, 1, NONE)] = stationary / stationary.sum()  # 1 container, 1 step
    game = make_game(
        name="serverless", num_states=S, num_actions=A, horizon=horizon,
        discount=stationary_discount(horizon, discount), reward_fn=_reward, transition_fn=transition_fn,
        params={**params, "max_containers_static": max_containers}, initial_distribution=start,
        mean_field="state", state_shape=(L, max_containers, max_cpu_steps, 3), dtype=dtype,
    )
    return game
