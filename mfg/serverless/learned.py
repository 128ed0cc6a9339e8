"""The MFG policy learned online in the tick simulator: the natural actor-critic of Mao et
al. (NeurIPS 2022, Algorithm 1) on the particle system.

N simulated functions share one policy; the mean field is their empirical distribution,
which every function feels through the cluster's contention and sees as the published
pressure.  Nothing is frozen: the population moves by the simulator's own dynamics while
the critic learns from all N functions' transitions at once, which is the paper's online
setting (``solvers.nac``'s sampled critic is its counterpart on a tabular game).

Observations (``observe``; only what a platform measures, never the arrivals to be
served), each mapped to [0, 1]:

  load         log(1 + S) / log(1 + max_containers), S the stable-window concurrency
  burst        1/2 + log((P + 0.1) / (S + 0.1)) / 4, P the panic-window concurrency
  variability  an average of |log((a_k + 1) / (a_{k-1} + 1))| over the last periods'
               arrivals a_k (how bursty the function is), / 2
  size         log(1 + ready + starting) / log(1 + max_containers)
  pressure     the cluster's last published pressure / 2
  time of day  (1 + sin) / 2 and (1 + cos) / 2 of the clock
  slack        log(slo / s) / 3  (s the function's mean service time, slo its objective)
  service      (log10 s + 2) / 5

and, with ``memory`` (off by default), a tenth, the function's own record:

  recent_violations  (log10(f + 0.001) + 3) / 3, f = v_bar / r_bar its share of SLO
               violations, v_bar and r_bar exponential averages (time constant
               ``memory_seconds``, one hour by default) of its violations and of its
               requests per decision period

(clipped to [0, 1]).  Features phi(o) [F] (``ObservationFeatures``): Gaussian RBFs on the
load and on a (load, x) grid for every other coordinate x, and a constant, the row
scaled to unit norm.  Linear actor and critic share them:

  pi_theta(a | o) = softmax_a(phi(o) . theta[:, a]),   Q(o, a) = phi(o) . (v + w[:, a]),

(``CoarseStateFeatures`` instead one-hot the coarse-grained game's state (type, load bin of
the period's arrivals, warm): the actor is then a tabular policy of that game, which the
game scores exactly.)  The critic's features are phi(o) (shared by all actions: its value part v) and phi(o) e_a
(its advantage part w, the actor's compatible features: the actor never reads v, which
shifts every action's logit alike).  Learning v from every function's transitions and
each column of w from those that took its action keeps the advantages, the only thing
the actor uses, free of each column's separate error in the level.

Actions (``TargetActions``, ``MoveActions``):

* targets: every decision period the policy picks, per function, one (KPA target, min
  scale, CPU per container); the Knative decider then scales that function every 2 s
  with the chosen target (``mfg.serverless.kpa.kpa_decide``, upstream's panic and
  scale-to-zero rules) and the chosen floor.  The KPA at each of its swept targets is
  one constant choice of this policy.
* moves: the paper's one-step moves: add ``steps[a]`` containers (default -1, 0, +1)
  at each decision, with the chosen CPU; a function at zero containers with a request
  waiting gets one, as the platform's activator would.

The learning rule, every decision period P (``decision_period``), for every function i
with its previous observation o_i, action a_i and the period's reward r_i:

  r_i = -(violations_i + price x allocated core-seconds_i) / nu_i,
  delta_i = r_i + gamma V(o'_i) - Q(o_i, a_i),
  V(o') = sum_a pi(a | o') (Q(o', a) - lambda log pi(a | o'))     (soft, expected SARSA),
  v <- v + (alpha / 2) mean_i delta_i phi(o_i),
  w[:, a] <- Proj_R( w[:, a] + (alpha / 2 n_a) sum_i delta_i phi(o_i) 1[a_i = a] ),

with nu_i = max(1, m_i (1 + price x s_i)), m_i function i's mean arrivals per period so
far: the cost of serving its requests on time with the cores their work needs.  A
positive constant per function does not change its best response, and it puts functions
whose loads differ by orders of magnitude on one scale for the shared critic.  n_a is
the number of functions that took a: v moves by the mean TD step of all, each column of
w by that of its functions, so with unit feature rows a prediction moves by at most
alpha times its error and alpha < 1 is stable whatever the number of features.  (With
``backlog_shaping`` r_i also subtracts (gamma B'_i - B_i) / nu_i, B_i and B'_i the
requests waiting at the period's start and end: a potential-based shaping, Ng, Harada
and Russell 1999, that leaves every policy's ranking unchanged in the MDP and charges a
growing backlog at once instead of when its requests start service; off by default,
docs/serverless.md says what it did.)  Every K
decisions (``actor_every``, an actor phase) the actor takes the natural-gradient step
with the phase's mean critic w_bar (``solvers.nac.natural_actor_step``):

  theta <- (1 - eta lambda h) theta + eta h w_bar,   h = 1 / (1 - gamma).

While learning, a share ``exploration`` of the decisions is uniform.  Each phase records
its diagnostics (``History``): mean squared TD error, policy change (mean total
variation between the new and the old policy at the functions' observations), entropy,
and the population's violations per request, cores per function and pressure.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mfg.serverless.kpa import KPAConfig, kpa_init
from mfg.serverless.policies import _KPAWindow, _Window, coarse_state
from mfg.serverless.simulator import _same_types
from solvers.nac import natural_actor_step, project_to_ball

__all__ = ["TargetActions", "MoveActions", "ObservationFeatures", "CoarseStateFeatures", "OnlineNAC", "History",
           "OBSERVATIONS", "MEMORY_OBSERVATION", "ALL_OBSERVATIONS", "observe", "memory_features"]

DAY = 86400.0
OBSERVATIONS = ("load", "burst", "variability", "size", "pressure", "sin_time", "cos_time", "slack", "service")
# the per-function memory, observed only by a policy with ``memory=True`` (column 10)
MEMORY_OBSERVATION = "recent_violations"
ALL_OBSERVATIONS = OBSERVATIONS + (MEMORY_OBSERVATION,)


# ---------------------------------------------------------------------------- actions

@dataclasses.dataclass(frozen=True)
class TargetActions:
    """Actions (KPA target, min scale, CPU per container): their product, target fastest.

    Attributes:
      targets: KPA targets (concurrency per pod before ``KPAConfig.target_utilization``,
        as the KPA baseline's knob).
      min_scale: floors of the pod count (0 lets the KPA scale to zero).
      cpu: cores requested per container.
    """

    targets: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    min_scale: tuple[int, ...] = (0, 1)
    cpu: tuple[float, ...] = (1.0,)
    kind: str = dataclasses.field(default="targets", init=False)

    def __post_init__(self):
        _check_choices("targets", self.targets, lambda v: v > 0, "numbers > 0")
        _check_choices("min_scale", self.min_scale, lambda v: float(v).is_integer() and v >= 0, "whole numbers >= 0")
        _check_choices("cpu", self.cpu, lambda v: v > 0, "numbers of cores > 0")

    @property
    def num_actions(self) -> int:
        return len(self.targets) * len(self.min_scale) * len(self.cpu)

    def table(self) -> np.ndarray:
        """[A, 3] (target, min scale, cpu) of every action."""
        grid = np.meshgrid(self.cpu, self.min_scale, self.targets, indexing="ij")
        return np.stack([grid[2].ravel(), grid[1].ravel(), grid[0].ravel()], axis=1).astype(np.float32)

    def index_of(self, target: float, min_scale: int = 0, cpu: float = 1.0) -> int:
        """The action that is this constant KPA configuration."""
        rows = self.table()
        hit = np.flatnonzero(np.isclose(rows[:, 0], target) & np.isclose(rows[:, 1], min_scale)
                             & np.isclose(rows[:, 2], cpu))
        if hit.size == 0:
            raise ValueError(f"no action has target {target}, min scale {min_scale}, cpu {cpu}; the actions are "
                             f"targets {self.targets} x min_scale {self.min_scale} x cpu {self.cpu}")
        return int(hit[0])


@dataclasses.dataclass(frozen=True)
class MoveActions:
    """Actions (container step, CPU per container): add ``steps[a]`` containers per decision."""

    steps: tuple[int, ...] = (-1, 0, 1)
    cpu: tuple[float, ...] = (1.0,)
    kind: str = dataclasses.field(default="moves", init=False)

    def __post_init__(self):
        _check_choices("steps", self.steps, lambda v: float(v).is_integer(), "whole numbers")
        _check_choices("cpu", self.cpu, lambda v: v > 0, "numbers of cores > 0")

    @property
    def num_actions(self) -> int:
        return len(self.steps) * len(self.cpu)

    def table(self) -> np.ndarray:
        """[A, 2] (step, cpu) of every action."""
        grid = np.meshgrid(self.cpu, self.steps, indexing="ij")
        return np.stack([grid[1].ravel(), grid[0].ravel()], axis=1).astype(np.float32)


def _check_choices(name, values, ok, allowed):
    if not isinstance(values, tuple) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v) for v in values):
        raise ValueError(f"{name} must be a non-empty tuple of {allowed}, got {values!r}")


# ----------------------------------------------------------------------- observations

def observe(load, burst, variability, size, pressure, clock, slack, service, max_containers: int,
            recent_violations=None) -> jax.Array:
    """[N, 9] normalized observations (``OBSERVATIONS``; the module docstring's maps), or
    [N, 10] (``ALL_OBSERVATIONS``) with ``recent_violations``.

    Args (all [N] but ``pressure`` and ``clock``, scalars):
      load, burst: stable- and panic-window concurrency S and P.
      variability: the mean absolute log-change of per-period arrivals.
      size: ready plus starting containers.
      pressure: the published pressure; clock: seconds since midnight.
      slack, service: slo and mean service time s (s).
      recent_violations: None, or each function's recent share f of violating requests.
    """
    scale = math.log1p(max_containers)
    angle = 2 * jnp.pi * clock / DAY
    n = load.shape[0]
    columns = [jnp.log1p(load) / scale, 0.5 + jnp.log((burst + 0.1) / (load + 0.1)) / 4, variability / 2,
               jnp.log1p(size) / scale, jnp.broadcast_to(pressure / 2, (n,)),
               jnp.broadcast_to((1 + jnp.sin(angle)) / 2, (n,)), jnp.broadcast_to((1 + jnp.cos(angle)) / 2, (n,)),
               jnp.log(slack / service) / 3, (jnp.log10(service) + 2) / 5]
    if recent_violations is not None:
        columns.append((jnp.log10(recent_violations + 1e-3) + 3) / 3)
    return jnp.clip(jnp.stack(columns, axis=1), 0.0, 1.0)


_LOAD_GRIDS = tuple(("load", name) for name in OBSERVATIONS if name != "load")


def memory_features(centers: int = 5) -> "ObservationFeatures":
    """The default features plus a (load, recent_violations) grid: for ``memory=True``."""
    return ObservationFeatures(grids=_LOAD_GRIDS + (("load", MEMORY_OBSERVATION),), centers=centers)


@dataclasses.dataclass(frozen=True)
class ObservationFeatures:
    """phi(o): RBFs on some coordinates and on 2-D grids, a constant, unit rows.

    The default conditions every coordinate on the load: a 1-D RBF on the load and a
    (load, x) grid for each other coordinate x.  Loads span orders of magnitude and set
    the scale of everything a function pays, so a feature shared by a function at 0.01
    and one at 100 requests/s would let the many idle functions decide the advantages
    of the few that carry the requests.

    Attributes:
      singles: ``OBSERVATIONS`` names with a 1-D RBF each.
      grids: pairs of names crossed by a 2-D RBF grid.
      centers: RBF centers per axis (on [0, 1], equally spaced; width the spacing).
    """

    singles: tuple[str, ...] = ("load",)
    grids: tuple[tuple[str, str], ...] = _LOAD_GRIDS
    centers: int = 5

    def __post_init__(self):
        if not (isinstance(self.centers, int) and self.centers >= 2):
            raise ValueError(f"centers must be an int >= 2, got {self.centers!r}")
        if any(name not in ALL_OBSERVATIONS for name in self.singles):
            raise ValueError(f"singles must name observations ({', '.join(ALL_OBSERVATIONS)}), got {self.singles!r}")
        for pair in self.grids:
            if len(pair) != 2 or any(name not in ALL_OBSERVATIONS for name in pair):
                raise ValueError(f"each grid is a pair of observation names ({', '.join(ALL_OBSERVATIONS)}), "
                                 f"got {pair!r}")

    @property
    def reads_memory(self) -> bool:
        """Whether a feature reads ``recent_violations`` (a policy with ``memory=True``)."""
        return MEMORY_OBSERVATION in self.singles + tuple(name for pair in self.grids for name in pair)

    @property
    def num_features(self) -> int:
        return len(self.singles) * self.centers + len(self.grids) * self.centers ** 2 + 1

    def rows(self, obs: jax.Array, service_mean: jax.Array, rate: jax.Array) -> jax.Array:
        """[N, F] the feature rows the learner reads (``self(obs)``; the other arguments are
        for ``CoarseStateFeatures``)."""
        return self(obs)

    def __call__(self, obs: jax.Array) -> jax.Array:
        """[N, F] unit-norm feature rows of observations [N, 9] (or [N, 10] with the memory)."""
        def rbf(x, count):                                   # [N] -> [N, count]
            centers = jnp.linspace(0.0, 1.0, count, dtype=x.dtype)
            width = 1.0 / (count - 1)
            return jnp.exp(-0.5 * ((x[:, None] - centers) / width) ** 2)

        parts = [rbf(obs[:, ALL_OBSERVATIONS.index(name)], self.centers) for name in self.singles]
        for first, second in self.grids:
            a = rbf(obs[:, ALL_OBSERVATIONS.index(first)], self.centers)
            b = rbf(obs[:, ALL_OBSERVATIONS.index(second)], self.centers)
            parts.append((a[:, :, None] * b[:, None, :]).reshape(obs.shape[0], -1))
        parts.append(jnp.ones((obs.shape[0], 1), obs.dtype))
        phi = jnp.concatenate(parts, axis=1)
        return phi / jnp.linalg.norm(phi, axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class CoarseStateFeatures:
    """phi = e_s, the one-hot of the coarse-grained game's state s = (type k, load bin l,
    warm w) (``mfg.serverless.target_game``).

    With these features the linear actor is a tabular policy of that game (theta [S, A]
    its logits) and the critic a table of Q-values, so the policy that the online learner
    finds on the tick simulator can be scored exactly in the game (its exploitability)
    and set against the game's equilibrium: a known answer for the learner itself.  The
    state is read as ``policies.TabularTargets`` reads it (``policies.coarse_state``): k
    from the function's mean service time, l from its arrival rate over the decision
    period just ended (the learner's period), w from whether it holds containers.

    Attributes:
      type_edges: [K - 1] service times between consecutive types (s).
      load_edges: [K] rows of [L - 2] log-rate edges between busy bins (inf pads).
    """

    type_edges: tuple[float, ...]
    load_edges: tuple[tuple[float, ...], ...]

    def __post_init__(self):
        widths = {len(row) for row in self.load_edges}
        if not self.load_edges or len(widths) != 1 or len(self.type_edges) != len(self.load_edges) - 1:
            raise ValueError(f"CoarseStateFeatures needs K rows of load_edges of one length and K - 1 type_edges, "
                             f"got {len(self.load_edges)} rows of lengths {sorted(widths)} and "
                             f"{len(self.type_edges)} type_edges")
        if list(self.type_edges) != sorted(self.type_edges):
            raise ValueError(f"type_edges must increase, got {self.type_edges}")

    @classmethod
    def of(cls, workload) -> "CoarseStateFeatures":
        """The features of a ``target_game.CoarseWorkload`` built by ``coarse_grain``."""
        if workload.type_edges is None or workload.load_edges is None:
            raise ValueError("this CoarseWorkload has no type_edges / load_edges (build it with coarse_grain)")
        return cls(tuple(float(e) for e in np.asarray(workload.type_edges)),
                   tuple(tuple(float(e) for e in row) for row in np.asarray(workload.load_edges)))

    @property
    def num_types(self) -> int:
        return len(self.load_edges)

    @property
    def num_bins(self) -> int:
        return len(self.load_edges[0]) + 2

    @property
    def num_features(self) -> int:
        return 2 * self.num_types * self.num_bins

    @property
    def reads_memory(self) -> bool:
        return False

    def states(self, service_mean: jax.Array, rate: jax.Array, warm: jax.Array) -> jax.Array:
        """[N] int game states of functions with these service times, period arrival rates
        (req/s) and warmth (``target_game.type_of``'s split of the service times, traced)."""
        types = jnp.searchsorted(jnp.asarray(self.type_edges, jnp.float32), service_mean.astype(jnp.float32))
        return coarse_state(types, jnp.asarray(self.load_edges, jnp.float32), self.num_bins, rate, rate > 0, warm)

    def rows(self, obs: jax.Array, service_mean: jax.Array, rate: jax.Array) -> jax.Array:
        """[N, S] one-hot rows (warm read from the observed size: log(1 + containers) > 0)."""
        warm = obs[:, OBSERVATIONS.index("size")] > 0
        return jax.nn.one_hot(self.states(service_mean, rate, warm), self.num_features, dtype=obs.dtype)


# ---------------------------------------------------------------------------- history

class History(NamedTuple):
    """Per actor phase diagnostics ([H] rings; ``phases`` counts the phases so far)."""

    td_error: jax.Array        # mean squared TD error of the phase's critic steps
    policy_change: jax.Array   # mean TV distance between the new and old policy at the functions
    entropy: jax.Array         # mean policy entropy (nats) at the functions
    violations: jax.Array      # the population's SLO violations per request in the phase
    cores: jax.Array           # allocated cores per function in the phase
    pressure: jax.Array        # mean published pressure in the phase
    phases: jax.Array          # int: phases recorded

    @staticmethod
    def empty(length: int) -> "History":
        zeros = jnp.zeros((length,), jnp.float32)
        return History(zeros, zeros, zeros, zeros, zeros, zeros, jnp.zeros((), jnp.int32))

    def as_numpy(self) -> dict[str, np.ndarray]:
        """The recorded phases in order (oldest first) as numpy arrays."""
        length = int(self.td_error.shape[0])
        count = int(self.phases)
        order = np.arange(max(0, count - length), count) % length
        return {name: np.asarray(getattr(self, name))[order] for name in self._fields if name != "phases"}


# ----------------------------------------------------------------------------- policy

_PHASE_FIELDS = ("steps", "td_sum", "totals", "pressure_sum", "ticks")


def _phase_zeros():
    """The running sums of an actor phase, zero (``_PHASE_FIELDS``)."""
    return (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), jnp.zeros((3,), jnp.float32),
            jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))


def policy_change(old: jax.Array, new: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean total variation between two [N, A] policies, mean entropy of the new one)."""
    change = 0.5 * jnp.mean(jnp.sum(jnp.abs(new - old), axis=1))
    entropy = -jnp.mean(jnp.sum(new * jnp.log(jnp.maximum(new, 1e-30)), axis=1))
    return change, entropy


class _Learner(NamedTuple):
    """What the population shares: actor, critic and the actor phase's running sums."""

    theta: jax.Array           # [F, A]
    v: jax.Array               # [F] the critic's value part
    w: jax.Array               # [F, A] the critic's advantage part
    w_sum: jax.Array           # [F, A] sum of the phase's critic iterates
    steps: jax.Array           # int: critic steps in the phase
    td_sum: jax.Array          # the phase's summed mean squared TD error
    totals: jax.Array          # [3]: the phase's violations, requests, core-seconds
    pressure_sum: jax.Array    # the phase's summed pressure (per tick)
    ticks: jax.Array           # ticks in the phase


class _Functions(NamedTuple):
    """Each function's memory [N] (``ring`` [N, W])."""

    ring: jax.Array
    count: jax.Array
    kpa: tuple
    cost: jax.Array            # violations + price x core-seconds since the last decision
    backlog: jax.Array         # requests waiting: at the last decision, and now
    arrived: jax.Array         # arrivals since the last decision
    previous_arrived: jax.Array
    variability: jax.Array
    arrivals_total: jax.Array
    phi: jax.Array             # [N, F] features at the last decision
    action: jax.Array          # int [N]
    floor: jax.Array           # min scale chosen
    target: jax.Array          # KPA target value chosen
    cpu: jax.Array             # CPU chosen
    pressure: jax.Array        # last published pressure (scalar)
    period_violations: jax.Array   # violations and requests started since the last decision
    period_requests: jax.Array
    recent_violations: jax.Array   # their exponential averages over decisions (``memory``)
    recent_requests: jax.Array


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["theta", "critic", "value", "service_mean", "slo", "price", "discount", "temperature",
                                "critic_rate", "actor_rate", "exploration", "radius", "day_start",
                                "congestion_price", "memory_seconds"],
                   meta_fields=["actions", "features", "config", "decision_period", "actor_every", "learning",
                                "greedy", "dt", "max_containers", "history", "backlog_shaping", "memory"])
@dataclasses.dataclass(frozen=True)
class OnlineNAC(_KPAWindow):
    """The online NAC policy (module docstring) for ``mfg.serverless.simulator.simulate``.

    Attributes (arrays: a sweep or a new population reuses one compilation):
      theta, critic: [F, A] actor and critic (advantage part) weights; value: [F] the
        critic's value part (``untrained`` gives zeros).
      service_mean, slo: [N] what the platform knows of each function (``for_functions``).
      price: cost of one allocated core-second, in SLO violations.
      congestion_price: kappa, the platform's extra charge per core-second and per unit of
        published pressure P above 1: the learner pays price + kappa max(0, P - 1) (issue
        16, item 6; 0: the flat price).  The charge is a transfer: ``summarize`` reports
        the objective at the flat price.
      discount: gamma per decision period; temperature: lambda (entropy weight).
      critic_rate: alpha; actor_rate: eta (eta lambda / (1 - gamma) <= 1).
      exploration: share of uniform decisions while learning.
      radius: the critic ball R.
      day_start: the clock (s since midnight) at the simulation's t = 0.
      actions: ``TargetActions`` or ``MoveActions``; features: ``ObservationFeatures`` (RBFs
        of the observations) or ``CoarseStateFeatures`` (the coarse game's state, one-hot).
      config: the KPA's settings under target actions (its ``target`` is overridden).
      decision_period: seconds between decisions (a multiple of ``config.tick``).
      actor_every: K, decisions per actor phase.
      learning: update critic and actor (False: the deployed policy, frozen).
      greedy: act on argmax pi instead of drawing (deployed policies only).
      dt: the simulator's tick; max_containers: the platform's bound.
      history: phases kept in ``History``.
      backlog_shaping: add the backlog's potential-based shaping to the reward.
      memory: observe each function's own recent share of SLO violations (the tenth
        observation; the features must read it, e.g. ``memory_features()``, which
        ``untrained(memory=True)`` takes by default).
      memory_seconds: the time constant of that memory's exponential averages.
    """

    theta: jax.Array
    critic: jax.Array
    value: jax.Array
    service_mean: jax.Array
    slo: jax.Array
    price: float = 0.02
    discount: float = 0.9
    temperature: float = 0.001
    critic_rate: float = 0.2
    actor_rate: float = 25.0
    exploration: float = 0.1
    radius: float = 1e3
    day_start: float = 0.0
    congestion_price: float = 0.0
    actions: TargetActions | MoveActions = TargetActions()
    features: ObservationFeatures | CoarseStateFeatures = ObservationFeatures()
    config: KPAConfig = KPAConfig()
    decision_period: float = 60.0
    actor_every: int = 10
    learning: bool = True
    greedy: bool = False
    dt: float = 2.0
    max_containers: int = 200
    history: int = 4096
    backlog_shaping: bool = False
    memory: bool = False
    memory_seconds: float = 3600.0

    @classmethod
    def untrained(cls, service_mean, slo, **kwargs) -> "OnlineNAC":
        """Zero actor and critic (the uniform policy), learning on."""
        actions = kwargs.get("actions", TargetActions())
        if kwargs.get("memory", False) and "features" not in kwargs:
            kwargs["features"] = memory_features()
        features = kwargs.get("features", ObservationFeatures())
        zeros = jnp.zeros((features.num_features, actions.num_actions), jnp.float32)
        policy = cls(zeros, zeros, jnp.zeros((features.num_features,), jnp.float32), jnp.asarray(service_mean, jnp.float32), jnp.asarray(slo, jnp.float32), **kwargs)
        policy.check()
        return policy

    def check(self) -> None:
        """Refuse settings the learning rule cannot use (named, with what is allowed)."""
        ratio = self.decision_period / self.config.tick
        checks = [
            ("discount", 0 <= self.discount < 1, "in [0, 1)"),
            ("temperature", self.temperature >= 0, ">= 0"),
            ("critic_rate", self.critic_rate > 0, "> 0"), ("actor_rate", self.actor_rate >= 0, ">= 0"),
            ("exploration", 0 <= self.exploration <= 1, "in [0, 1]"), ("price", self.price >= 0, ">= 0"),
            ("congestion_price", self.congestion_price >= 0, ">= 0"),
            ("radius", self.radius > 0, "> 0"),
            ("decision_period", self.decision_period > 0 and abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1,
             f"a positive multiple of the KPA tick ({self.config.tick} s)"),
            ("actor_every", isinstance(self.actor_every, int) and self.actor_every >= 1, "an int >= 1"),
            ("history", isinstance(self.history, int) and self.history >= 1, "an int >= 1"),
            ("memory_seconds", self.memory_seconds >= self.decision_period,
             f"at least the decision period ({self.decision_period} s)"),
        ]
        for name, ok, allowed in checks:
            if not bool(ok):
                raise ValueError(f"OnlineNAC.{name} must be {allowed}, got {getattr(self, name)!r}")
        step = float(self.actor_rate) * float(self.temperature) / (1 - float(self.discount))
        if step > 1:
            raise ValueError(f"the actor step needs actor_rate x temperature / (1 - discount) <= 1, got {step:.3g}; "
                             f"lower actor_rate or temperature")
        self._check_memory()
        self._check_shapes()

    def _check_memory(self) -> None:
        """The features read the memory observation exactly when ``memory`` is on."""
        reads = self.features.reads_memory
        if reads != self.memory:
            raise ValueError(f"OnlineNAC.memory is {self.memory} but its features "
                             f"{'read' if reads else 'do not read'} {MEMORY_OBSERVATION!r}; with memory=True use "
                             f"features that read it (memory_features()), without it features of OBSERVATIONS only")

    @property
    def _num_observations(self) -> int:
        return len(ALL_OBSERVATIONS) if self.memory else len(OBSERVATIONS)

    def _check_shapes(self) -> None:
        shape = (self.features.num_features, self.actions.num_actions)
        if tuple(np.shape(self.theta)) != shape or tuple(np.shape(self.critic)) != shape:
            raise ValueError(f"theta and critic must be [features, actions] = {list(shape)}, got "
                             f"{list(np.shape(self.theta))} and {list(np.shape(self.critic))}")
        if tuple(np.shape(self.value)) != shape[:1]:
            raise ValueError(f"value must be [features] = [{shape[0]}], got {list(np.shape(self.value))}")

    def for_functions(self, service_mean, slo) -> "OnlineNAC":
        """The same policy for another population (its service times and SLOs)."""
        return dataclasses.replace(self, service_mean=jnp.asarray(service_mean, jnp.float32),
                                   slo=jnp.asarray(slo, jnp.float32))

    def deployed(self, greedy: bool = False) -> "OnlineNAC":
        """The learned policy frozen: no learning, no exploration."""
        return dataclasses.replace(self, learning=False, exploration=0.0, greedy=greedy)

    def learned(self, state) -> "OnlineNAC":
        """This policy with the weights a simulation's final ``policy_state`` holds."""
        learner = state[0]
        return dataclasses.replace(self, theta=learner.theta, critic=learner.w, value=learner.v)

    # ----------------------------------------------------------------- the protocol

    def init(self, num_functions, key):
        if int(np.shape(self.service_mean)[0]) != num_functions:
            raise ValueError(f"the policy knows {np.shape(self.service_mean)[0]} functions, the simulator runs "
                             f"{num_functions}; use policy.for_functions(service_mean, slo)")
        f = self._input_size
        learner = self._initial_learner()
        ring, count = self._window(num_functions)
        zeros = jnp.zeros((num_functions,), jnp.float32)
        ints = jnp.zeros((num_functions,), jnp.int32)
        table = jnp.asarray(self.actions.table())
        first = jnp.full((num_functions,), self._constant_action(), jnp.int32)
        floor, target, cpu = self._apply_table(table, first)
        memory = _Functions(ring, count, kpa_init(num_functions), zeros, jnp.zeros((2, num_functions), jnp.float32),
                            zeros, zeros, zeros, zeros,
                            jnp.zeros((num_functions, f), jnp.float32), ints, floor, target, cpu,
                            jnp.zeros((), jnp.float32), zeros, zeros, zeros, zeros)
        return learner, memory, History.empty(self.history), jnp.zeros((), jnp.int32)

    def _constant_action(self) -> int:
        """The action before the first decision: the KPA at its default-sweep middle (or stay)."""
        if self.actions.kind == "targets":
            rows = self.actions.table()
            return int(np.argmin(np.abs(rows[:, 0] - 0.5) + rows[:, 1] + np.abs(rows[:, 2] - 1.0)))
        rows = self.actions.table()
        return int(np.argmin(np.abs(rows[:, 0]) + np.abs(rows[:, 1] - 1.0)))

    def _apply_table(self, table, action):
        """(floor, target value or step, cpu) [N] of actions [N]."""
        row = table[action]
        if self.actions.kind == "targets":
            return row[:, 1], row[:, 0] * self.config.target_utilization, row[:, 2]
        return jnp.zeros_like(row[:, 0]), row[:, 0], row[:, 1]

    def record(self, state, measurement, now):
        learner, memory, history, decisions = state
        ring, count = _Window.push(memory.ring, memory.count, measurement.concurrency)
        allocated = (measurement.ready + measurement.starting) * measurement.cpu * self.dt
        charge = self.price + self.congestion_price * jnp.maximum(measurement.pressure - 1.0, 0.0)
        cost = memory.cost + measurement.violations + charge * allocated
        memory = memory._replace(ring=ring, count=count, cost=cost, arrived=memory.arrived + measurement.arrivals,
                                 pressure=measurement.pressure,
                                 period_violations=memory.period_violations + measurement.violations,
                                 period_requests=memory.period_requests + measurement.started,
                                 backlog=memory.backlog.at[1].set(measurement.backlog.astype(memory.backlog.dtype)))
        if self.learning:
            totals = learner.totals + jnp.stack([measurement.violations.sum(), measurement.started.sum(),
                                                 allocated.sum()])
            learner = learner._replace(totals=totals, pressure_sum=learner.pressure_sum + measurement.pressure,
                                       ticks=learner.ticks + 1.0)
        return learner, memory, history, decisions

    # ------------------------------------------- the approximator (linear here)

    @property
    def _input_size(self) -> int:
        return self.features.num_features

    def _inputs(self, obs, arrived):
        """[N, d] what the approximator reads (here the features phi(o)); ``arrived``: each
        function's arrivals over the decision period just ended."""
        return self.features.rows(obs, jnp.asarray(self.service_mean), arrived / self.decision_period)

    def _initial_learner(self):
        f, a = self.features.num_features, self.actions.num_actions
        return _Learner(jnp.asarray(self.theta, jnp.float32), jnp.asarray(self.value, jnp.float32),
                        jnp.asarray(self.critic, jnp.float32), jnp.zeros((f, a), jnp.float32), *_phase_zeros())

    def _logits(self, learner, x):
        return x @ learner.theta

    def decide(self, state, view, key):
        learner, memory, history, decisions = state
        every = int(round(self.decision_period / self.config.tick))
        tick_index = jnp.round(view.now / self.config.tick).astype(jnp.int32)
        at_decision = (tick_index % every) == 0
        def decision(state):                 # the branch keeps the state's dtypes (x64 or not)
            return _same_types(self._decision(state, view, key), state)

        state = jax.lax.cond(at_decision, decision, lambda s: s, (learner, memory, history, decisions))
        learner, memory, history, decisions = state
        if self.actions.kind == "targets":
            pods, kpa_state = self._kpa_step(memory.ring, memory.count, memory.kpa, view, target_value=memory.target)
            pods = jnp.maximum(pods, memory.floor)
            memory = memory._replace(kpa=kpa_state)
        else:
            moved = jnp.clip(view.ready + view.starting + memory.target, 0, self.max_containers)
            pods = jnp.where(at_decision, moved, view.ready + view.starting)
            # the platform scales a function from zero when a request waits for it (Knative's
            # activator, OpenWhisk's on-demand containers): no policy can starve a function
            pods = jnp.where((pods < 1) & (memory.backlog[1] > 0), 1.0, pods)
        return pods, memory.cpu.astype(view.cpu.dtype), (learner, memory, history, decisions)

    def _decision(self, state, view, key):
        learner, memory, history, decisions = state
        stable = _Window.mean_of_last(memory.ring, memory.count, self._ticks(self.config.stable_window))
        panic = _Window.mean_of_last(memory.ring, memory.count, self._ticks(self.config.panic_window))
        change = jnp.abs(jnp.log((memory.arrived + 1.0) / (memory.previous_arrived + 1.0)))
        variability = jnp.where(decisions > 0, 0.9 * memory.variability + 0.1 * change, 0.0)
        clock = jnp.mod(self.day_start + view.now, DAY)
        # the function's own record: exponential averages over decisions (weight P / tau)
        rho = jnp.asarray(self.decision_period / self.memory_seconds, jnp.float32)
        recent_violations = (1 - rho) * memory.recent_violations + rho * memory.period_violations
        recent_requests = (1 - rho) * memory.recent_requests + rho * memory.period_requests
        share = recent_violations / jnp.maximum(recent_requests, 1e-30) * (recent_requests > 0)
        obs = observe(stable, panic, variability, view.ready + view.starting, memory.pressure, clock,
                      jnp.asarray(self.slo), jnp.asarray(self.service_mean), self.max_containers,
                      recent_violations=share if self.memory else None)
        phi = self._inputs(obs.astype(jnp.float32), memory.arrived)
        logits = self._logits(learner, phi)
        log_pi = jax.nn.log_softmax(logits, axis=1)
        pi = jnp.exp(log_pi)
        explore_key, pick_key, uniform_key = jax.random.split(key, 3)
        if self.greedy:
            action = jnp.argmax(logits, axis=1).astype(jnp.int32)
        else:
            action = jax.random.categorical(pick_key, logits, axis=1).astype(jnp.int32)
        if self.learning:
            uniform = jax.random.randint(uniform_key, action.shape, 0, self.actions.num_actions, jnp.int32)
            action = jnp.where(jax.random.uniform(explore_key, action.shape) < self.exploration, uniform, action)
        arrivals_total = memory.arrivals_total + memory.arrived

        if self.learning:
            learner, history = self._learn(learner, history, memory, decisions, phi, pi, log_pi, arrivals_total)

        floor, target, cpu = self._apply_table(jnp.asarray(self.actions.table()), action)
        memory = memory._replace(cost=jnp.zeros_like(memory.cost), arrived=jnp.zeros_like(memory.arrived),
                                 backlog=memory.backlog.at[0].set(memory.backlog[1]),
                                 previous_arrived=memory.arrived, variability=variability,
                                 arrivals_total=arrivals_total, phi=phi, action=action, floor=floor, target=target,
                                 cpu=cpu, period_violations=jnp.zeros_like(memory.period_violations),
                                 period_requests=jnp.zeros_like(memory.period_requests),
                                 recent_violations=recent_violations, recent_requests=recent_requests)
        return learner, memory, history, decisions + 1

    def _reward(self, memory, decisions, arrivals_total):
        """[N] the period's normalized reward r_i (module docstring)."""
        per_period = arrivals_total / jnp.maximum(decisions, 1).astype(jnp.float32)
        scale = jnp.maximum(per_period * (1.0 + self.price * jnp.asarray(self.service_mean)), 1.0)
        reward = -memory.cost / scale
        if self.backlog_shaping:
            before, now = memory.backlog
            reward = reward - (self.discount * now - before) / scale
        return reward

    def _close_phase(self, learner, history, change, entropy, n):
        """Record the phase's diagnostics in ``history`` and zero its running sums."""
        violations, requests, core_seconds = learner.totals
        ticks = jnp.maximum(learner.ticks, 1.0)
        row = history.phases % self.history
        values = (learner.td_sum / jnp.maximum(learner.steps, 1), change, entropy,
                  violations / jnp.maximum(requests, 1e-30), core_seconds / (n * ticks * self.dt),
                  learner.pressure_sum / ticks)
        history = History(*(field.at[row].set(v.astype(field.dtype)) for field, v in zip(history[:-1], values)),
                          history.phases + 1)
        return learner._replace(**dict(zip(_PHASE_FIELDS, _phase_zeros()))), history

    def _learn(self, learner, history, memory, decisions, phi, pi, log_pi, arrivals_total):
        """One critic step on the period's transitions; at a phase's end, the actor step."""
        gamma, lam = self.discount, self.temperature
        n, a = phi.shape[0], self.actions.num_actions
        reward = self._reward(memory, decisions, arrivals_total)
        q_next = phi @ learner.w + (phi @ learner.v)[:, None]
        v_next = jnp.sum(pi * (q_next - lam * log_pi), axis=1)
        onehot = jax.nn.one_hot(memory.action, a, dtype=phi.dtype)
        q_prev = jnp.sum((memory.phi @ learner.w) * onehot, axis=1) + memory.phi @ learner.v
        valid = (decisions > 0).astype(phi.dtype)
        delta = (reward + gamma * v_next - q_prev) * valid
        # each action's column moves by alpha times the mean TD step of the functions that
        # took it (unit feature rows: a prediction moves by at most alpha times its error)
        counts = jnp.maximum(onehot.sum(0), 1.0)                             # [A]
        step = 0.5 * self.critic_rate * (memory.phi.T @ (delta[:, None] * onehot)) / counts
        w = project_to_ball(learner.w + step, self.radius)
        v = project_to_ball(learner.v + 0.5 * self.critic_rate * (memory.phi.T @ delta) / n, self.radius)
        learner = learner._replace(v=v, w=w, w_sum=learner.w_sum + w * valid,
                                   steps=learner.steps + valid.astype(jnp.int32),
                                   td_sum=learner.td_sum + jnp.mean(delta ** 2))

        def actor(operands):
            learner, history = operands
            w_bar = learner.w_sum / jnp.maximum(learner.steps, 1).astype(jnp.float32)
            theta = natural_actor_step(learner.theta, w_bar, self.actor_rate, lam, 1.0 / (1.0 - gamma))
            change, entropy = policy_change(pi, jax.nn.softmax(phi @ theta, axis=1))
            learner = learner._replace(theta=theta, w_sum=jnp.zeros_like(learner.w_sum))
            return self._close_phase(learner, history, change, entropy, n)

        return self._at_phase_end(decisions, actor, learner, history)

    def _at_phase_end(self, decisions, actor, learner, history):
        """``actor(learner, history)`` at the decisions that end a phase (every K), else both as they are."""
        phase_end = (decisions > 0) & (decisions % self.actor_every == 0)
        return jax.lax.cond(phase_end, lambda operands: _same_types(actor(operands), operands),
                            lambda operands: operands, (learner, history))
