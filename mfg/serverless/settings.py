"""Workloads for the tick simulator, and the three shipped cluster settings.

``Workload.from_trace`` turns one day of a trace in the Azure Functions format
(``mfg.serverless.workloads.Trace``, the real trace or a synthetic day) into what the
tick simulator needs: invocations per minute, a service time and an SLO per function
(``mfg.serverless.demand``), and the cores of work the population brings each minute,

    D(t) = sum_i lam_i(t) s_i     (cores busy at one core per request, no queueing).

A function whose peak needs more containers than one function may have
(``max_containers`` at ``peak_utilization``) is scaled down to that peak: the trace's
popularity spans eight orders of magnitude, and its hottest functions would run as many
deployments, not as one autoscaled revision (the same rule as the minute model's
``fit_rates_to_cluster``).  ``Workload.fitted`` says how many were.

The cluster settings size the capacity C from D over the day:

* ``roomy``: C = 2 max_t D(t); contention never binds.
* ``tight``: C = 1.1 x the 90th percentile of D: the peak hours exceed it, so contention
  binds at the daily peak (and only then, for a workload whose daily cycle dominates).
* ``congested``: C = 0.9 x the median of D: it binds most of the day.

``Workload.contended_share(C)`` reports the share of minutes with D > C, so a reader sees
what each setting means for the day at hand.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from mfg.serverless.demand import service_means, slo_of
from mfg.serverless.simulator import Functions, MinuteCounts

__all__ = ["Workload", "SETTINGS", "capacity_of"]

SETTINGS = ("roomy", "tight", "congested")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A pool of F functions for the tick simulator.

    Attributes:
      counts: [F, M] invocations per minute (float, after the fit).
      service_mean: [F] mean service time at one core (s).
      slo: [F] latency objectives (s).
      fitted: how many functions were scaled down to fit ``max_containers``.
    """

    counts: np.ndarray
    service_mean: np.ndarray
    slo: np.ndarray
    fitted: int = 0

    @classmethod
    def from_trace(cls, trace, max_containers: int = 1000, peak_utilization: float = 0.7,
                   slo_multiple: float | None = None, slo_floor: float | None = None,
                   keep_idle: bool = False) -> "Workload":
        """The trace's invoked functions, fitted to ``max_containers`` (see the module docstring).

        ``keep_idle``: keep every row, also those without an invocation, so that row i is
        the trace's function i (another day of the same functions,
        ``generate_functions(..., day=d)``, lines up with day 0's pool)."""
        if not (isinstance(max_containers, int) and max_containers >= 1):
            raise ValueError(f"max_containers must be an int >= 1, got {max_containers!r}")
        if not 0 < peak_utilization <= 1:
            raise ValueError(f"peak_utilization must lie in (0, 1], got {peak_utilization!r}")
        invocations = np.asarray(trace.invocations, np.float64)
        active = np.arange(invocations.shape[0]) if keep_idle else np.flatnonzero(invocations.sum(1) > 0)
        if active.size == 0:
            raise ValueError("the trace has no function with any invocation")
        counts = invocations[active]
        s = service_means(np.asarray(trace.durations)[active])
        rule = {} if slo_multiple is None else {"multiple": slo_multiple}
        if slo_floor is not None:
            rule["floor"] = slo_floor
        slo = slo_of(s, **rule)
        peak_busy = counts.max(1) / 60.0 * s                          # containers busy at the peak minute
        limit = peak_utilization * max_containers
        scale = np.minimum(1.0, limit / np.maximum(peak_busy, 1e-300))
        return cls(counts * scale[:, None], s, slo, int(np.sum(scale < 1.0)))

    @property
    def num_functions(self) -> int:
        return self.counts.shape[0]

    @property
    def num_minutes(self) -> int:
        return self.counts.shape[1]

    def demand(self, assignment: np.ndarray | None = None) -> np.ndarray:
        """[M] D(t), the cores of work per minute of the pool (or of ``assignment``'s functions)."""
        rows = np.arange(self.num_functions) if assignment is None else np.asarray(assignment)
        return (self.counts[rows] / 60.0 * self.service_mean[rows, None]).sum(0)

    def contended_share(self, capacity: float, assignment: np.ndarray | None = None) -> float:
        """Share of the day's minutes whose work exceeds ``capacity`` cores."""
        return float(np.mean(self.demand(assignment) > capacity))

    def sample(self, num_functions: int, seed: int = 0) -> np.ndarray:
        """[N] pool rows of a simulated population (without replacement when N <= F)."""
        if not (isinstance(num_functions, (int, np.integer)) and num_functions >= 1):
            raise ValueError(f"num_functions must be an int >= 1, got {num_functions!r}")
        rng = np.random.default_rng(seed)
        return rng.choice(self.num_functions, size=int(num_functions), replace=num_functions > self.num_functions)

    def inputs(self, assignment: np.ndarray, start: int = 0, dispersion: float | None = None):
        """(Functions, MinuteCounts) of the population ``assignment`` for the simulator."""
        assignment = np.asarray(assignment)
        functions = Functions(jnp.asarray(self.service_mean[assignment], jnp.float32),
                              jnp.asarray(self.slo[assignment], jnp.float32))
        return functions, MinuteCounts(jnp.asarray(self.counts, jnp.float32), jnp.asarray(assignment), start,
                                       dispersion)


def capacity_of(setting: str, workload: Workload, assignment: np.ndarray | None = None) -> float:
    """The capacity (cores) of ``setting`` (one of ``SETTINGS``) for this population."""
    demand = workload.demand(assignment)
    if setting == "roomy":
        return float(2.0 * demand.max())
    if setting == "tight":
        return float(1.1 * np.quantile(demand, 0.9))
    if setting == "congested":
        return float(0.9 * np.median(demand))
    raise ValueError(f"unknown cluster setting {setting!r}; allowed: {', '.join(SETTINGS)}")

