"""The tabular game coarse-grained from the tick model: target actions, the same reward.

The known answer for the online learner (issue 16): a game small enough to solve exactly
whose reward and actions are those of ``mfg.serverless.learned.OnlineNAC`` in the tick
simulator, coarse-grained to one decision period (60 s by default).

**State** s = (k, l, w):

* k in 0..K-1, the function's *type*: a class of functions of similar service time,
  with its mean service time s_k (s, at one core) and SLO slo_k (``demand.slo_of``);
* l in 0..L-1, the load bin of the period just measured, with rate lam_{k,l} (req/s);
  bin 0 is the idle bin (lam = 0: a minute without invocations), bins 1..L-1 split the
  positive rates (``game.load_bin_edges``, request-weighted); the bins follow a Markov
  chain P_k[l, l'] fitted from the trace's minutes (``coarse_grain``);
* w in {0, 1}: whether the function holds containers at the end of the period (0: it
  was scaled to zero, so the next requests wait for a cold start).

**Actions** a = (target tau, min scale m, CPU c) of ``learned.TargetActions``: for one
period the function runs the KPA with that target.  The period's load lam' = lam_{k,l'}
arrives after the decision (l' ~ P_k[l, .]), as in the tick simulator, and the period
has two phases:

* for its first ``reaction`` seconds t_1 (KPA's 6 s panic window plus the 1 s cold
  start) the function holds the size the KPA rule gives on the load it measured,
      n_1 = min(N_max, max(m, ceil(lam_{k,l} s_k / (tau u)))),   u = 0.7
  (KPA's desired pods at its target utilization, with the concurrency a busy container
  has at one core, lam s); a function at zero with requests arriving is scaled from
  zero by the activator to max(1, n_2') (below);
* for the rest, t_2 = T - t_1, KPA's scale-up to the period's own load serves:
  n_2 = max(n_1, n_2'), n_2' = min(N_max, ceil(lam' s_k / (tau u))) (no scale-down
  within the period: the stable window holds it).

**Mean field and contention** (cpu.shares, as ``platform.cpu_shares``).  A busy request
wants one core; function (s, a) keeps b = E_{l'}[(t_1 min(lam' s_k, n_1) + t_2 min(lam'
s_k, n_2)) / T] cores busy.  With the state-action mean field L, the population wants
W(L) = sum_{s,a} L(s, a) b(s, a) cores per function; when W exceeds the capacity C
(cores per function), the node divides C by shares: every busy request of a container
with c cores runs at v = min(1, theta c), theta solving sum L b min(1, theta c) = C
(water-filling, by bisection); else v = 1.  The published pressure is rho = W / C.

**Reward** of (s, a) at L, over the period T (the tick model's reward per period):

    r = -E_{l'}[ violation_cost viol + p(rho) c (t_1 n_1 + t_2 n_2) ] / nu_k,
    viol = lam' ((t_1 - t_c) P_1 + t_c V_cold + t_2 P_2),

with P_i = P(R > slo_k) for the M/M/n_i response time R at service rate v / s_k per
container (``queueing.response_time_survival``; every request of an unstable queue counts
as a violation), t_c = cold_start when the period starts without containers (w = 0 or
n_1 = 0) and requests arrive (else 0), V_cold the share of the requests arriving during
the cold start that miss the SLO (each waits out the rest of the cold start, then an Exp
service of mean s_k / v), nu_k = max(1, m_k (1 + price s_k)) with m_k the type's mean
arrivals per period (``OnlineNAC``'s normalization), and p(rho) = price +
congestion_price max(0, rho - 1) the platform's price per core-second, rising with the
pressure once contention binds (``congestion_price`` 0: the tick comparison's flat
price).

**Transition**: (k, l, w) -> (k, l', 1[n_2 > 0]) with probability P_k[l, l'].

What the coarse-graining leaves out (docs/serverless.md): KPA's reaction beyond the two
phases (its scale-down, panic mode's timing), the backlog carried between periods, cold
starts of containers added to warm functions (1 s of a 60 s period), and the extra busy
time of slowed requests (the tick model's fixed point, ``Platform.contention_passes``).  Stationary
discounted, gamma 0.9 as the online learner.  S = 2 K L, A = |targets| |min scale| |cpu|.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfg.game import MeanFieldGame, make_game
from mfg.games._common import fixed_kernel
from mfg.serverless.demand import slo_of
from mfg.serverless.game import load_bin_edges
from mfg.serverless.learned import TargetActions
from mfg.serverless.platform import DEFAULT_COLD_START
from mfg.serverless.queueing import response_time_survival

__all__ = ["CoarseWorkload", "coarse_grain", "TargetGameModel", "TargetReward", "serverless_targets",
           "decode_target_states", "population_cost", "pressure_of", "stationary_joint", "social_optimum",
           "type_of", "tick_policy", "CAPACITY_RATIOS"]

KPA_TARGET_UTILIZATION = 0.7     # KPAConfig.target_utilization (Knative's default)

# Capacity / the population's mean work, per setting.  The stationary game has no daily
# peak (the mean field is the population's average over the day), so a setting is how
# far the cluster sits below the work it is offered on average.
CAPACITY_RATIOS = {"roomy": 2.0, "tight": 0.85, "congested": 0.7}


@dataclasses.dataclass(frozen=True)
class CoarseWorkload:
    """A workload coarse-grained to K types and L load bins.

    Attributes:
      levels: [K, L] rate of each load bin (req/s); column 0 is the idle bin (0).
      chain: [K, L, L] row-stochastic load chains, one per type.
      service_mean: [K] mean service time at one core (s).
      slo: [K] latency objectives (s).
      weights: [K] share of the functions of each type.
      type_edges: [K - 1] service times between consecutive types (s), for ``type_of``.
      load_edges: [K, L - 2] per type, log(rate) edges between the busy bins (+inf pads
        a type whose ties merged bins); None when the levels were given by hand.
    """

    levels: np.ndarray
    chain: np.ndarray
    service_mean: np.ndarray
    slo: np.ndarray
    weights: np.ndarray
    type_edges: np.ndarray | None = None
    load_edges: np.ndarray | None = None

    def __post_init__(self):
        K, L = np.shape(self.levels)
        checks = [("levels", np.all(np.isfinite(self.levels)) and np.all(np.asarray(self.levels) >= 0),
                   "finite rates >= 0 (req/s)"),
                  ("chain", np.shape(self.chain) == (K, L, L) and np.all(np.asarray(self.chain) >= 0)
                   and np.allclose(np.sum(self.chain, -1), 1.0), f"[K, L, L] = [{K}, {L}, {L}] row-stochastic"),
                  ("service_mean", np.shape(self.service_mean) == (K,) and np.all(np.asarray(self.service_mean) > 0),
                   f"[K] = [{K}] seconds > 0"),
                  ("slo", np.shape(self.slo) == (K,) and np.all(np.asarray(self.slo) > 0), f"[K] = [{K}] seconds > 0"),
                  ("weights", np.shape(self.weights) == (K,) and np.all(np.asarray(self.weights) >= 0)
                   and np.isclose(np.sum(self.weights), 1.0), f"[K] = [{K}] shares summing to 1")]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"CoarseWorkload.{name} (shape {np.shape(getattr(self, name))}) is not allowed; "
                                 f"it must be {allowed}")

    @property
    def num_types(self) -> int:
        return int(np.shape(self.levels)[0])

    @property
    def num_bins(self) -> int:
        return int(np.shape(self.levels)[1])

    def stationary_loads(self) -> np.ndarray:
        """[K, L] the stationary distribution of each type's load chain."""
        out = np.full(self.levels.shape, 1.0 / self.num_bins)
        for _ in range(500):
            out = np.einsum("kl,klm->km", out, self.chain)
        return out

    def mean_work(self) -> float:
        """Cores of work per function on average: sum_k w_k E[lam] s_k."""
        return float(np.sum(self.weights * (self.stationary_loads() * self.levels).sum(1) * self.service_mean))


def coarse_grain(workload, num_types: int = 3, num_load_bins: int = 8, smoothing: float = 0.5) -> CoarseWorkload:
    """K service-time classes and L load bins of a tick ``settings.Workload``.

    Types split the functions at quantiles of their mean service time; each type's s_k is
    the request-weighted mean of its functions' service times and slo_k = slo_of(s_k).
    Its load chain counts the transitions between consecutive minutes of its functions
    (bin 0: minutes without invocations; bins 1..L-1 at request-weighted quantiles of the
    type's positive per-minute rates; a bin that ties leave empty repeats the level below
    it), with add-``smoothing`` counts.
    """
    if not (isinstance(num_types, int) and num_types >= 1):
        raise ValueError(f"num_types must be an int >= 1, got {num_types!r}")
    if not (isinstance(num_load_bins, int) and num_load_bins >= 2):
        raise ValueError(f"num_load_bins must be an int >= 2 (the idle bin and one busy bin), got {num_load_bins!r}")
    rates = np.asarray(workload.counts, np.float64) / 60.0                       # [F, M] req/s
    service = np.asarray(workload.service_mean, np.float64)
    if num_types > len(service):
        raise ValueError(f"num_types = {num_types} exceeds the workload's {len(service)} functions")
    order = np.argsort(service, kind="stable")
    groups = np.array_split(order, num_types)
    L = num_load_bins
    levels, chains, means, weights = np.zeros((num_types, L)), np.zeros((num_types, L, L)), [], []
    load_edges = np.full((num_types, L - 2), np.inf)
    for k, rows in enumerate(groups):
        r = rates[rows]
        requests = r.sum(1)
        means.append(float(np.sum(requests * service[rows]) / max(requests.sum(), 1e-300)))
        weights.append(len(rows) / len(service))
        positive = r[r > 0]
        edges = load_bin_edges(positive, L - 1, "requests") if positive.size else np.zeros(0)
        load_edges[k, :len(edges)] = edges
        bins = np.where(r > 0, 1 + np.searchsorted(edges, np.log(np.maximum(r, 1e-300))), 0)
        for b in range(1, L):
            # Ties can merge edges (``load_bin_edges``): an empty bin repeats the level below.
            levels[k, b] = r[bins == b].mean() if np.any(bins == b) else levels[k, b - 1]
        counts = np.full((L, L), smoothing)
        np.add.at(counts, (bins[:, :-1].ravel(), bins[:, 1:].ravel()), 1.0)
        chains[k] = counts / counts.sum(1, keepdims=True)
    levels[:, 0] = 0.0
    means = np.asarray(means)
    type_edges = np.array([0.5 * (service[groups[k][-1]] + service[groups[k + 1][0]]) for k in range(num_types - 1)])
    return CoarseWorkload(levels, chains, means, slo_of(means), np.asarray(weights), type_edges, load_edges)


def type_of(workload: CoarseWorkload, service_mean) -> np.ndarray:
    """[N] the type of functions with these mean service times (``coarse_grain``'s split)."""
    if workload.type_edges is None:
        raise ValueError("this CoarseWorkload has no type_edges (build it with coarse_grain)")
    return np.searchsorted(np.asarray(workload.type_edges), np.asarray(service_mean, np.float64)).astype(np.int32)


def tick_policy(workload: CoarseWorkload, policy, service_mean, actions: TargetActions | None = None, **kwargs):
    """The game's ``policy`` [S, A] as a tick-simulator policy for functions with these
    service times (``mfg.serverless.policies.TabularTargets``; ``kwargs`` go to it)."""
    from mfg.serverless.policies import TabularTargets

    if workload.load_edges is None:
        raise ValueError("this CoarseWorkload has no load_edges (build it with coarse_grain)")
    actions = TargetActions(cpu=(0.5, 1.0)) if actions is None else actions
    policy = np.asarray(policy, np.float32)
    if policy.shape != (2 * workload.num_types * workload.num_bins, actions.num_actions):
        raise ValueError(f"policy has shape {policy.shape}; this workload's game needs "
                         f"[S, A] = [{2 * workload.num_types * workload.num_bins}, {actions.num_actions}]")
    return TabularTargets(jnp.asarray(policy), jnp.asarray(type_of(workload, service_mean)),
                          jnp.asarray(workload.load_edges, jnp.float32), jnp.asarray(actions.table()),
                          num_bins=workload.num_bins, **kwargs)


@dataclasses.dataclass(frozen=True)
class TargetGameModel:
    """Constants of the coarse-grained game (seconds, cores, costs in SLO violations).

    Attributes:
      capacity: C, the cluster's cores per function.
      period: T, the decision period (the online learner's, 60 s).
      cold_start: from a container's order to its first request (``platform.DEFAULT_COLD_START``).
      reaction: how long the size measured holds before KPA's scale-up to the period's
        load is serving (KPA's 6 s panic window plus the cold start).
      price: cost of one allocated core-second.
      violation_cost: cost of one request over its SLO.
      congestion_price: the rise of the price per unit of pressure above 1.
      max_containers: N_max per function.
      contention_iterations: bisection steps of the water-filling.
    """

    capacity: float
    period: float = 60.0
    cold_start: float = DEFAULT_COLD_START
    reaction: float = 7.0
    price: float = 0.02
    violation_cost: float = 1.0
    congestion_price: float = 0.0
    max_containers: int = 64
    contention_iterations: int = 50

    def __post_init__(self):
        checks = [("capacity", self.capacity > 0, "a number of cores per function > 0 (inf: no contention)"),
                  ("period", self.period > 0 and math.isfinite(self.period), "a number of seconds > 0"),
                  ("cold_start", 0 <= self.cold_start < self.period, "seconds in [0, period)"),
                  ("reaction", self.cold_start <= self.reaction <= self.period, "seconds in [cold_start, period]"),
                  ("price", self.price >= 0 and math.isfinite(self.price), "a number >= 0 per core-second"),
                  ("violation_cost", self.violation_cost >= 0, "a number >= 0 per request"),
                  ("congestion_price", self.congestion_price >= 0, "a number >= 0 per core-second"),
                  ("max_containers", isinstance(self.max_containers, int) and self.max_containers >= 1,
                   "an int >= 1"),
                  ("contention_iterations", isinstance(self.contention_iterations, int)
                   and self.contention_iterations >= 1, "an int >= 1")]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"TargetGameModel.{name} = {getattr(self, name)!r} is not allowed; "
                                 f"it must be {allowed}")


def decode_target_states(num_types: int, num_bins: int) -> np.ndarray:
    """[S, 3] (type k, load bin l, warm w) of every state index, s = (k L + l) 2 + w."""
    k, l, w = np.meshgrid(np.arange(num_types), np.arange(num_bins), np.arange(2), indexing="ij")
    return np.stack([k.ravel(), l.ravel(), w.ravel()], axis=1)


def _survival_of_cold_wait(cold_start, slo, service):
    """V_cold: the share of requests arriving uniformly in [0, t_c) that miss the SLO when
    each waits t_c - t and is then served in Exp(mean ``service``):
    (1 / t_c) int_0^{t_c} min(1, exp(-(slo - t_c + t) / service)) dt."""
    t0 = jnp.clip(cold_start - slo, 0.0, cold_start)            # before t0 the wait alone misses
    tail = service * (jnp.exp(-(slo - cold_start + t0) / service) - jnp.exp(-slo / service))
    return (t0 + jnp.maximum(tail, 0.0)) / cold_start


def pressure_of(params, joint) -> jax.Array:
    """rho = W(L) / C: the cores the population wants over the capacity."""
    return jnp.sum(joint * params["busy"]) / params["capacity"]


def _speed(params, joint, iterations: int) -> jax.Array:
    """[A] v = min(1, theta c_a) under contention (1 without): the water-filling of C."""
    cpu = params["cpu"]                                          # [A]
    busy = jnp.sum(joint * params["busy"], axis=0)               # [A] cores wanted per CPU choice
    capacity = params["capacity"]

    def given(theta):
        return jnp.sum(busy * jnp.minimum(1.0, theta * cpu))

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        over = given(mid) > capacity
        return jnp.where(over, lo, mid), jnp.where(over, mid, hi)

    hi = 1.0 / jnp.min(cpu)
    lo, hi = lax.fori_loop(0, iterations, bisect, (jnp.zeros_like(hi), hi))
    # One Newton step from the (constant) bisection root: the same value, and the
    # derivative of theta in L by the implicit function theorem (mean-field control
    # differentiates the population cost through the contention).
    root = lax.stop_gradient(0.5 * (lo + hi))
    slope = jnp.sum(busy * cpu * (root * cpu < 1.0))
    theta = root - (given(root) - capacity) / jnp.where(slope > 0, slope, 1.0)
    contended = jnp.sum(busy) > capacity
    return jnp.where(contended, jnp.minimum(1.0, theta * cpu), 1.0)


@dataclasses.dataclass(frozen=True)
class TargetReward:
    """reward_fn of the coarse-grained game (module docstring)."""

    model: TargetGameModel

    def period_costs(self, params, joint):
        """(violations, allocated core-seconds) [S, A] expected over the period's load."""
        m = self.model
        speed = _speed(params, joint, m.contention_iterations)   # [A]
        lam = params["next_rate"]                                # [S, 1, L']
        service = params["service"][:, None, None] / speed[None, :, None]
        slo = params["slo"][:, None, None]

        def miss(servers):
            """P(R > slo) in M/M/servers (1 for an unstable queue or no container)."""
            safe = jnp.maximum(servers, 1.0)
            survival = response_time_survival(slo, safe, lam, 1.0 / service, m.max_containers)
            return jnp.where((lam * service < safe) & (servers > 0), survival, 1.0)

        first, second = params["containers"][0], params["containers"][1]     # [S, A, L']
        cold = params["cold"] * m.cold_start                     # seconds without a container
        cold_miss = _survival_of_cold_wait(m.cold_start, slo, service) if m.cold_start > 0 else 0.0
        t1, t2 = m.reaction, m.period - m.reaction
        violations = lam * ((t1 - cold) * miss(first) + cold * cold_miss + t2 * miss(second))
        allocated = (t1 * first + t2 * second) * params["cpu"][None, :, None]
        probs = params["next_probs"]                             # [S, 1, L']
        return jnp.sum(probs * violations, -1), jnp.sum(probs * allocated, -1)

    def __call__(self, params, t, joint):
        del t
        m = self.model
        violations, allocated = self.period_costs(params, joint)
        price = m.price + m.congestion_price * jnp.maximum(pressure_of(params, joint) - 1.0, 0.0)
        cost = m.violation_cost * violations + price * allocated
        return -cost / params["scale"][:, None]


def serverless_targets(workload: CoarseWorkload | None = None, setting: str | None = "tight",
                       capacity: float | None = None, actions: TargetActions | None = None,
                       model: dict | None = None, discount: float = 0.9, kernel: str = "sparse",
                       dtype: Any = None) -> MeanFieldGame:
    """The coarse-grained serverless game (module docstring); S = 2 K L.

    Args:
      workload: a ``CoarseWorkload``; default: ``coarse_grain`` of the tick comparison's
        training day (``generate_functions(1000, seed=1)``, ``Workload.from_trace`` with
        ``max_containers`` = N_max).
      setting: ``"roomy"``, ``"tight"`` or ``"congested"``: capacity =
        ``CAPACITY_RATIOS[setting]`` x the mean work; ignored when ``capacity`` is given.
      capacity: C in cores per function (overrides ``setting``).
      actions: the target actions (default: KPA targets 0.1..1.0, min scale {0, 1}, CPU
        {0.5, 1} cores: under contention a larger request buys a larger share).
      model: keyword arguments of ``TargetGameModel`` other than ``capacity``.
      discount: gamma.
      kernel: storage of the kernel (``sparse``, ``pull`` or ``dense``).
    """
    model = dict(model or {})
    if "capacity" in model:
        raise ValueError("give the capacity as serverless_targets(capacity=...), not inside model")
    max_containers = int(model.get("max_containers", TargetGameModel.max_containers))
    if workload is None:
        from mfg.serverless.settings import Workload
        from mfg.serverless.workloads import generate_functions
        workload = coarse_grain(Workload.from_trace(generate_functions(1000, seed=1), max_containers=max_containers))
    if not isinstance(workload, CoarseWorkload):
        raise TypeError(f"workload must be a CoarseWorkload (see coarse_grain), got {type(workload).__name__}")
    if capacity is None:
        if setting not in CAPACITY_RATIOS:
            raise ValueError(f"unknown cluster setting {setting!r}; allowed: {', '.join(CAPACITY_RATIOS)} "
                             f"(or give capacity in cores per function)")
        capacity = CAPACITY_RATIOS[setting] * workload.mean_work()
    game_model = TargetGameModel(capacity=float(capacity), **model)
    actions = TargetActions(cpu=(0.5, 1.0)) if actions is None else actions
    if not isinstance(actions, TargetActions):
        raise TypeError(f"actions must be TargetActions, got {type(actions).__name__}")

    K, L = workload.num_types, workload.num_bins
    states = decode_target_states(K, L)
    S, table = len(states), actions.table().astype(np.float64)
    k, l, w = states.T
    target, floor, cpu = table[:, 0], table[:, 1], table[:, 2]
    s_k = workload.service_mean[k]                                             # [S]
    lam = workload.levels[k, l]                                                # [S]
    lam_next = workload.levels[k]                                              # [S, L']
    probs = workload.chain[k, l]                                               # [S, L']
    per_pod = target * KPA_TARGET_UTILIZATION                                  # [A]
    arrivals = lam_next[:, None, :] > 0                                        # [S, 1, L']
    measured = np.minimum(max_containers, np.maximum(floor[None, :], np.ceil(lam[:, None] * s_k[:, None] / per_pod)))
    wanted = np.minimum(max_containers, np.ceil(lam_next[:, None, :] * s_k[:, None, None] / per_pod[None, :, None]))
    # Phase 1 holds the size measured (the activator scales a function at zero to the
    # period's need at its first request); phase 2 has KPA's scale-up to the period's load.
    first = np.where(measured[:, :, None] > 0, measured[:, :, None], np.where(arrivals, np.maximum(wanted, 1.0), 0.0))
    second = np.maximum(first, wanted)
    cold = ((w[:, None, None] == 0) | (measured[:, :, None] == 0)) & arrivals
    work = lam_next[:, None, :] * s_k[:, None, None]
    t1 = game_model.reaction
    busy = (t1 * np.minimum(work, first) + (game_model.period - t1) * np.minimum(work, second)) / game_model.period
    containers = np.stack([first, second])                                     # [2, S, A, L']
    next_state = ((k[:, None, None] * L + np.arange(L)[None, None, :]) * 2 + (second > 0))
    per_period = (workload.stationary_loads() * workload.levels).sum(1) * game_model.period      # [K]
    scale = np.maximum(1.0, per_period * (1.0 + game_model.price * workload.service_mean))[k]
    kernel_params, transition_fn = fixed_kernel(kernel, next_state.astype(np.int32),
                                                np.broadcast_to(probs[:, None, :], next_state.shape))
    params = {
        "next_rate": lam_next[:, None, :], "next_probs": probs[:, None, :], "containers": containers,
        "cold": cold.astype(np.float64), "busy": (probs[:, None, :] * busy).sum(-1), "cpu": cpu,
        "service": s_k, "slo": workload.slo[k], "scale": scale, "capacity": np.float64(capacity),
        "table": table, **kernel_params,
    }
    start = np.zeros(S)
    start[states[:, 2] == 1] = (workload.weights[:, None] * workload.stationary_loads()).ravel()
    return make_game(name="serverless_targets", num_states=S, num_actions=actions.num_actions, horizon=None,
                     discount=discount, reward_fn=TargetReward(game_model), transition_fn=transition_fn,
                     params=params, initial_distribution=start, mean_field="state_action",
                     state_shape=(K, L, 2), dtype=dtype)


def population_cost(game: MeanFieldGame, joint: jax.Array) -> dict[str, jax.Array]:
    """The population's cost per request at the mean field L (at the flat price: the
    congestion price is a transfer, not a cost): violations, core-seconds and the
    objective (violations + price x core-seconds) / requests, and the pressure."""
    reward: TargetReward = game.reward_fn
    params = game.params
    violations, allocated = reward.period_costs(params, joint)
    requests = jnp.sum(joint * jnp.sum(params["next_probs"] * params["next_rate"], -1) * reward.model.period)
    v, c = jnp.sum(joint * violations), jnp.sum(joint * allocated)
    return {"slo_violations": v / requests, "allocated_cores": c / reward.model.period,
            "objective": (reward.model.violation_cost * v + reward.model.price * c) / requests,
            "pressure": pressure_of(params, joint)}


def stationary_joint(game: MeanFieldGame, policy: jax.Array) -> jax.Array:
    """[S, A] L_pi = mu_pi pi, mu_pi the stationary law of the chain under pi, by a direct
    (differentiable) solve of mu_k (I - P_pi,k) = 0 on each type's block of 2 L states
    (a type never changes: each block is closed, irreducible with the smoothed load
    chain), scaled to the type's share in mu_0."""
    if game.name != "serverless_targets" or "next_state" not in game.params:
        raise ValueError("stationary_joint needs the coarse-grained game (serverless_targets) with a sparse or pull "
                         f"kernel, got {game.name!r} with params {sorted(game.params)}")
    K, L, _ = game.state_shape
    block = 2 * L
    params = game.params
    successors = jax.nn.one_hot(params["next_state"] % block, block, dtype=policy.dtype)  # [S, A, L', 2L]
    kernel = jnp.einsum("sa,saj,sajt->st", policy, params["probs"].astype(policy.dtype), successors)
    kernel = kernel.reshape(K, block, block)
    system = jnp.swapaxes(jnp.eye(block, dtype=policy.dtype) - kernel, -1, -2).at[:, -1].set(1.0)
    rhs = jnp.zeros((K, block), policy.dtype).at[:, -1].set(1.0)
    mu = jnp.linalg.solve(system, rhs[..., None])[..., 0]
    shares = game.initial_distribution.astype(policy.dtype).reshape(K, block).sum(-1)
    return (shares[:, None] * mu).reshape(-1)[:, None] * policy


def social_optimum(game: MeanFieldGame, init_policy: jax.Array | None = None, steps: int = 3000,
                   learning_rate: float = 0.05) -> tuple[jax.Array, np.ndarray]:
    """Mean-field control: the policy that minimizes the population objective
    ``population_cost(game, L_pi)["objective"]`` directly, by Adam on softmax logits
    through the stationary mean field and the contention (``stationary_joint``).

    Args:
      init_policy: the starting policy (e.g. the equilibrium; default uniform).
    Returns:
      (policy [S, A], objective per step [steps]).
    """
    if game.name != "serverless_targets":
        raise ValueError(f"social_optimum needs the coarse-grained game (serverless_targets), got {game.name!r}")
    import optax

    dtype = game.initial_distribution.dtype
    start = jnp.full(game.policy_shape, 1.0 / game.num_actions, dtype) if init_policy is None else init_policy
    logits = jnp.log(jnp.maximum(jnp.asarray(start, dtype), 1e-12))
    optimizer = optax.adam(learning_rate)

    def objective(z):
        return population_cost(game, stationary_joint(game, jax.nn.softmax(z, -1)))["objective"]

    @jax.jit
    def descend(z):
        def step(carry, _):
            z, opt_state = carry
            value, grad = jax.value_and_grad(objective)(z)
            updates, opt_state = optimizer.update(grad, opt_state, z)
            return (optax.apply_updates(z, updates), opt_state), value
        (z, _), values = lax.scan(step, (z, optimizer.init(z)), None, length=steps)
        return z, values

    logits, values = descend(logits)
    return jax.nn.softmax(logits, -1), np.asarray(values)
