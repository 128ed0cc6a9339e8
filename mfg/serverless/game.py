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

Latency: M/M/n (``mfg.serverless.queueing``) with arrival rate lam_l and n containers of rate mu_eff;
the tail latency is its p99 response time plus ``cold_start`` seconds when the action adds
a container.  SLO preservation = min(1, slo / p99) (0 for an unstable queue);
utilization = CPU used / allocated (``mfg.serverless.cluster.cpu_utilization``).

Reward (configurable weights): r = w_util * utilization + w_slo * SLO preservation (or the
cost form w_slo * SLO preservation - price * allocated cores, ``reward_form="cost"``),
replaced by ``illegal_penalty`` for an illegal move, and ``oscillation_penalty`` added
for a move that reverses the last one.

Contention, latency and reward are the functions of ``mfg.serverless.cluster`` (constants and their
sources there), shared with the particle form ``mfg.serverless.particles``.  Load levels default to
the shipped Azure-format sample fitted to the cluster (``fit_rates_to_cluster``).

Stationary discounted by default (gamma 0.9): the paper's setting.  S = L N_max C_max 3.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mfg.serverless.cluster import (ClusterModel, cpu_pressure, fit_rates_to_cluster, function_reward, p99_latency,
                         service_rate)
from mfg.game import MeanFieldGame, make_game
from mfg.games._common import fixed_kernel, stationary_discount

__all__ = ["serverless", "fit_load_chain", "ACTIONS", "MOVES", "decode_states", "state_index", "apply_moves",
           "load_bin", "load_bin_edges", "move_direction", "default_workload_rates", "cluster_model_of", "TabularReward"]

ACTIONS = ("no-op", "+1 container", "-1 container", "+1 cpu step", "-1 cpu step")
NONE, OUT, IN = 0, 1, 2


def fit_load_chain(rates: np.ndarray, num_bins: int = 6, smoothing: float = 0.5,
                   weighting: str = "minutes") -> tuple[np.ndarray, np.ndarray]:
    """Load levels and a Markov chain fitted from per-minute arrival rates.

    Args:
      rates: [F, T] arrival rates (requests/s) of F functions over T minutes; only
        functions with some traffic are used.
      num_bins: L, load bins with edges at quantiles of the positive rates (log scale,
        ``load_bin_edges``); zero rates fall in bin 0.
      smoothing: add-``smoothing`` (Laplace) counts to every transition.
      weighting: where the bin edges go (``load_bin_edges``).
    Returns:
      (levels [L] representative rate of each bin (its mean), chain [L, L] row-stochastic);
      L <= num_bins (bins that ties would leave empty are merged, see ``load_bin_edges``).
    """
    rates = np.asarray(rates, np.float64)
    active = rates[rates.sum(1) > 0]
    if active.size == 0:
        raise ValueError("fit_load_chain needs at least one function with non-zero rates.")
    edges = load_bin_edges(active, num_bins, weighting)
    num_bins = len(edges) + 1
    bins = load_bin(active, edges)
    levels = np.array([active[bins == b].mean() if np.any(bins == b) else 0.0 for b in range(num_bins)])
    counts = np.full((num_bins, num_bins), smoothing)
    np.add.at(counts, (bins[:, :-1].reshape(-1), bins[:, 1:].reshape(-1)), 1.0)
    return levels, counts / counts.sum(1, keepdims=True)


def load_bin_edges(rates: np.ndarray, num_bins: int, weighting: str = "minutes") -> np.ndarray:
    """[L - 1] bin edges in log(rate) at quantiles of the positive rates (zero rates fall in bin 0).

    Args:
      rates: per-minute rates, any shape.
      num_bins: L.
      weighting: ``"minutes"``: every function-minute counts once (equal time in each
        bin); ``"requests"``: every minute weighs its rate (equal requests in each bin,
        so the bins are finest where the traffic, and the latency that the SLO measures,
        is).
    """
    positive = np.asarray(rates, np.float64)
    positive = np.sort(positive[positive > 0])
    if positive.size == 0:
        raise ValueError("load bins need at least one positive rate.")
    if weighting not in ("minutes", "requests"):
        raise ValueError(f"weighting must be 'minutes' or 'requests', got {weighting!r}.")
    weights = positive if weighting == "requests" else np.ones_like(positive)
    cumulative = (np.cumsum(weights) - 0.5 * weights) / weights.sum()
    edges = np.interp(np.linspace(0, 1, num_bins + 1)[1:-1], cumulative, np.log(positive))
    # Ties (e.g. many minutes at a capped peak) can leave a bin empty: keep distinct edges
    # below the largest rate only, so that every bin holds some minutes.
    return np.unique(edges[edges < np.log(positive[-1])])


def load_bin(rates, edges):
    """Bin of each rate (any shape): ``searchsorted(edges, log rate)``; works on numpy and jax arrays."""
    xp = jnp if isinstance(rates, jax.Array) else np
    return xp.searchsorted(xp.asarray(edges), xp.log(xp.maximum(rates, 1e-300)))


def default_workload_rates(model: ClusterModel, peak_load: float = 0.5) -> np.ndarray:
    """[F, 1440] rates of the shipped Azure-format sample, fitted to the cluster."""
    from mfg.serverless.workloads import SAMPLE_DIR, read_trace

    return fit_rates_to_cluster(read_trace(SAMPLE_DIR).rates_per_second(), model, peak_load)


def decode_states(max_containers: int, max_cpu_steps: int, num_bins: int):
    """[S, 4] (load bin, containers, cpu steps, last move) of every state index."""
    l, n, c, m = np.meshgrid(np.arange(num_bins), np.arange(1, max_containers + 1),
                             np.arange(1, max_cpu_steps + 1), np.arange(3), indexing="ij")
    return np.stack([l.reshape(-1), n.reshape(-1), c.reshape(-1), m.reshape(-1)], axis=1)


def state_index(load_bin_, containers, cpu_steps, last_move, max_containers: int, max_cpu_steps: int):
    """Index of (l, n, c, m) in the tabular game (the inverse of ``decode_states``)."""
    return ((load_bin_ * max_containers + (containers - 1)) * max_cpu_steps + (cpu_steps - 1)) * 3 + last_move


# (dn, dc, cold start) of each action, and the direction of the move it makes.
MOVES = np.array([[0, 0, 0], [1, 0, 1], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
DIRECTION = np.array([NONE, OUT, IN, OUT, IN])


def apply_moves(containers, cpu_steps, last_move, action, max_containers: int, max_cpu_steps: int):
    """The effect of ``action`` (any shapes broadcasting; numpy or jax arrays).

    Returns the tuple (containers, cpu_steps, last_move, illegal, reverses): the
    allocation and last direction after the move; ``illegal`` where the move passes a
    bound (then nothing changes); ``reverses`` where a legal move goes against the last
    direction.
    """
    xp = jnp if any(isinstance(x, jax.Array) for x in (containers, cpu_steps, last_move, action)) else np
    moves, direction = xp.asarray(MOVES), xp.asarray(DIRECTION)
    n_next = containers + moves[action, 0]
    c_next = cpu_steps + moves[action, 1]
    illegal = (n_next < 1) | (n_next > max_containers) | (c_next < 1) | (c_next > max_cpu_steps)
    move = direction[action]
    reverses = ((last_move == OUT) & (move == IN)) | ((last_move == IN) & (move == OUT))
    return (xp.where(illegal, containers, n_next), xp.where(illegal, cpu_steps, c_next),
            xp.where(illegal | (move == NONE), last_move, move), illegal, reverses & ~illegal)


def move_direction(containers, cpu_steps, containers_next, cpu_steps_next):
    """OUT where the allocation grows (more CPU, or the same CPU on more containers), IN
    where it shrinks, NONE where it stays (numpy or jax arrays)."""
    xp = jnp if any(isinstance(x, jax.Array) for x in (containers, cpu_steps, containers_next, cpu_steps_next)) else np
    size, size_next = containers * cpu_steps, containers_next * cpu_steps_next
    more = (size_next > size) | ((size_next == size) & (containers_next > containers))
    less = (size_next < size) | ((size_next == size) & (containers_next < containers))
    return xp.where(more, OUT, xp.where(less, IN, NONE))


@dataclasses.dataclass(frozen=True)
class TabularReward:
    """reward_fn of the tabular game: the shared cluster model (``mfg.serverless.cluster``) on every (s, a)."""

    model: ClusterModel

    def __call__(self, params, t, mu):
        del t
        model = self.model
        states = params["states"]                                   # [S, 4] as floats
        n, c = states[:, 1], states[:, 2]
        pressure = cpu_pressure(model, jnp.dot(mu, n * c) * model.cpu_step)
        lam = params["levels"][params["load_bin"]]                  # [S]
        moves = params["moves"]                                     # [A, 3] (dn, dc, cold)
        n_next = jnp.clip(n[:, None] + moves[None, :, 0], 1, model.max_containers)
        c_next = jnp.clip(c[:, None] + moves[None, :, 1], 1, model.max_cpu_steps)
        rate = service_rate(model, c_next, pressure)
        p99 = p99_latency(model, n_next, lam[:, None], rate)
        base = function_reward(model, lam[:, None], n_next, c_next, pressure, p99, moves[None, :, 2])
        return jnp.where(params["illegal"], model.illegal_penalty, base + params["oscillation"])


def serverless(
    max_containers: int = 8, max_cpu_steps: int = 8, num_load_bins: int = 6, levels: Any = None,
    load_chain: Any = None, peak_load: float = 0.5, load_bins: str = "requests",
    cpu_step: float = 0.125, service_rate_per_core: float = 8.0, slo: float = 1.0, cold_start: float = 0.3,
    capacity: float = 4.0, knee: float = 0.7, contention: float = 4.0, w_util: float = 0.3, w_slo: float = 0.7,
    reward_form: str = "template", price: float = 0.0, illegal_penalty: float = -1.0, oscillation_penalty: float = -1.0, horizon: int | None = None,
    discount: float | None = None, kernel: str = "pull", dtype: Any = None,
) -> MeanFieldGame:
    """The tabular serverless game (see the module docstring); S = L N_max C_max 3, A = 5.

    Args:
      max_containers: N_max, containers per function (1..N_max).
      max_cpu_steps: C_max, CPU steps per container (1..C_max).
      num_load_bins: L, when the load chain is fitted from the shipped sample.
      levels: load levels [L] (requests/s); default (with ``load_chain``): fitted from
        the shipped Azure-format sample (``fit_rates_to_cluster`` with ``peak_load``).
      load_chain: [L, L] row-stochastic load transition matrix.
      peak_load: the hottest functions' peak as a fraction of the largest allocation's rate.
      load_bins: ``"minutes"`` or ``"requests"``: how the fitted load bins are placed
        (``load_bin_edges``).
      cpu_step: cores per CPU step.
      service_rate_per_core: requests/s one core serves.
      slo: latency objective on p99 (s).
      cold_start: extra seconds on the tail when scaling out.
      capacity: cluster cores per function.
      knee: the pressure past which containers slow down.
      contention: slope of the slowdown past the knee.
      w_util: weight of utilization in the reward.
      w_slo: weight of SLO preservation in the reward.
      reward_form: ``"template"`` (w_util utilization + w_slo SLO preservation) or ``"cost"``
        (w_slo SLO preservation - price x allocated cores).
      price: reward per allocated core per step in the cost form.
      illegal_penalty: reward of a move past a bound.
      oscillation_penalty: added for a move that reverses the last one.
      horizon: None (stationary, the default) or a finite horizon.
      discount: gamma (default 0.9 when stationary).
      kernel: storage of the load chain's kernel (``pull``, ``sparse`` or ``dense``).
      dtype: float dtype of the arrays.
    """
    model = ClusterModel(
        max_containers=max_containers, max_cpu_steps=max_cpu_steps, cpu_step=cpu_step,
        service_rate_per_core=service_rate_per_core, slo=slo, cold_start=cold_start, capacity=capacity,
        knee=knee, contention=contention, w_util=w_util, w_slo=w_slo, reward_form=reward_form, price=price,
        illegal_penalty=illegal_penalty,
        oscillation_penalty=oscillation_penalty)
    if levels is None or load_chain is None:
        rates = default_workload_rates(model, peak_load)
        levels, load_chain = fit_load_chain(rates, num_load_bins, weighting=load_bins)
        edges = load_bin_edges(rates, num_load_bins, load_bins)
    else:
        # Given levels: a rate falls in the bin of the nearest level (in log scale).
        positive = np.log(np.maximum(np.asarray(levels, np.float64), 1e-12))
        edges = 0.5 * (positive[:-1] + positive[1:])
    levels, load_chain = np.asarray(levels, np.float64), np.asarray(load_chain, np.float64)
    L = len(levels)
    if load_chain.shape != (L, L) or np.any(load_chain < 0) or not np.allclose(load_chain.sum(1), 1.0):
        raise ValueError(f"load_chain must be a row-stochastic [L, L] = [{L}, {L}] matrix.")
    if np.any(levels < 0):
        raise ValueError("levels (arrival rates per load bin) must be >= 0.")
    states = decode_states(max_containers, max_cpu_steps, L)
    S, A = len(states), len(ACTIONS)
    l, n, c, m = states.T
    n_next, c_next, m_next, illegal, reverses = apply_moves(n[:, None], c[:, None], m[:, None],
                                                            np.arange(A)[None, :], max_containers, max_cpu_steps)
    oscillation = np.where(reverses, oscillation_penalty, 0.0)
    next_state = np.stack([state_index(np.full_like(n_next, l2), n_next, c_next, m_next, max_containers,
                                       max_cpu_steps) for l2 in range(L)], axis=-1)
    probs = load_chain[l][:, None, :].repeat(A, axis=1)                       # [S, A, L]
    kernel_params, transition_fn = fixed_kernel(kernel, next_state, probs)
    params = {
        "states": states.astype(np.float64), "load_bin": l.astype(np.int32), "levels": levels,
        "load_edges": np.asarray(edges, np.float64),
        "moves": MOVES.astype(np.float64), "illegal": illegal, "oscillation": oscillation, **kernel_params,
    }
    stationary = np.linalg.matrix_power(load_chain.T, 200) @ np.full(L, 1.0 / L)
    start = np.zeros(S)
    start[state_index(np.arange(L), 1, 1, NONE, max_containers, max_cpu_steps)] = stationary / stationary.sum()
    return make_game(
        name="serverless", num_states=S, num_actions=A, horizon=horizon,
        discount=stationary_discount(horizon, discount), reward_fn=TabularReward(model), transition_fn=transition_fn,
        params=params, initial_distribution=start,
        mean_field="state", state_shape=(L, max_containers, max_cpu_steps, 3), dtype=dtype,
    )


def cluster_model_of(game: MeanFieldGame) -> ClusterModel:
    """The ``ClusterModel`` a tabular serverless game was built with."""
    if not isinstance(game.reward_fn, TabularReward):
        raise ValueError(f"{game.name!r} is not a tabular serverless game.")
    return game.reward_fn.model
