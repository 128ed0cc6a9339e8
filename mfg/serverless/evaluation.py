"""Evaluation harness: any set of autoscaling policies on the same workload and population.

``evaluate(model, loads, policies)`` runs every policy on every load (one load per seed,
e.g. a fresh synthetic workload each) through the particle simulator and reports, per
policy, the metrics below overall (mean over seeds with a 95% confidence interval) and
per function:

  mean_latency      request-weighted mean response time (s); overloaded minutes count at the timeout
  p50_latency, p99_latency   request-weighted quantiles of the response time (s)
  slo_violation_rate  share of requests slower than the SLO
  allocated_cpu     mean allocated cores per function
  utilization       busy cores / allocated cores
  cold_starts_per_hour  containers started per function-hour
  reward            mean per-step reward of the game (0.3 utilization + 0.7 SLO preservation,
                    with the penalties)

Latency quantiles come from the simulator's per-function histograms (log-spaced bins,
interpolated log-linearly inside a bin; the last bin holds requests at the timeout).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import numpy as np

from mfg.serverless.cluster import ClusterModel
from mfg.serverless.particles import ParticleResult, latency_edges, simulate

__all__ = ["METRICS", "summarize", "histogram_quantile", "evaluate", "PolicyEvaluation", "confidence_interval",
           "pool_clusters", "cluster"]

METRICS = ("mean_latency", "p50_latency", "p99_latency", "slo_violation_rate", "allocated_cpu", "utilization",
           "cold_starts_per_hour", "reward")

# Two-sided 95% Student t quantiles by degrees of freedom (1..30); the normal's beyond.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def confidence_interval(values) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval) of independent seeds' values (0 for one seed)."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, 0.0
    t = _T95[values.size - 2] if values.size - 1 <= len(_T95) else 1.96
    return mean, float(t * values.std(ddof=1) / math.sqrt(values.size))


def histogram_quantile(histogram: np.ndarray, edges: np.ndarray, q: float, overflow_value: float) -> np.ndarray:
    """q-quantile of histograms [..., B + 2] over bins [0, e_0), [e_0, e_1), ..., [e_B, inf).

    Inside a bin the quantile is interpolated in log space; the first bin maps to e_0 and the
    overflow bin to ``overflow_value`` (the timeout).  NaN where a histogram is empty.
    """
    histogram = np.asarray(histogram, np.float64)
    edges = np.asarray(edges, np.float64)
    total = histogram.sum(-1, keepdims=True)
    cumulative = np.cumsum(histogram, -1)
    target = q * total
    k = np.minimum((cumulative < target).sum(-1), histogram.shape[-1] - 1)            # bin holding the quantile
    below = np.where(k > 0, np.take_along_axis(cumulative, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(histogram, k[..., None], -1)[..., 0]
    fraction = np.clip((target[..., 0] - below) / np.where(inside > 0, inside, 1.0), 0.0, 1.0)
    lo = np.log(edges[np.clip(k - 1, 0, len(edges) - 1)])
    hi = np.log(edges[np.clip(k, 0, len(edges) - 1)])
    value = np.exp(lo + fraction * (hi - lo))
    value = np.where(k == 0, edges[0], np.where(k == histogram.shape[-1] - 1, overflow_value, value))
    return np.where(total[..., 0] > 0, value, np.nan)


def summarize(result: ParticleResult, model: ClusterModel, edges: np.ndarray | None = None) -> dict[str, Any]:
    """Overall and per-function metrics (see the module docstring) of one simulated episode.

    Returns a dict with ``overall`` (metric -> float), ``per_function`` (metric -> [N]
    array), ``histogram`` ([B + 2] request counts per latency bin, all functions) and
    ``series`` (name -> [T] cluster series).
    """
    edges = latency_edges() if edges is None else np.asarray(edges)
    acc = {k: np.asarray(v, np.float64) for k, v in result.per_function.items()}
    num_functions = acc["requests"].shape[0]
    steps = len(np.asarray(result.series["pressure"]))
    requests = acc["requests"]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_function = {
            "mean_latency": acc["latency_sum"] / requests,
            "p50_latency": histogram_quantile(acc["histogram"], edges, 0.5, model.timeout),
            "p99_latency": histogram_quantile(acc["histogram"], edges, 0.99, model.timeout),
            "slo_violation_rate": acc["violations"] / requests,
            "allocated_cpu": acc["allocated"] / steps,
            "utilization": acc["busy"] / acc["allocated"],
            "cold_starts_per_hour": acc["cold_starts"] / (steps / 60.0),
            "reward": acc["reward"] / steps,
            "requests": requests,
        }
    histogram = acc["histogram"].sum(0)
    overall = {
        "mean_latency": acc["latency_sum"].sum() / requests.sum(),
        "p50_latency": float(histogram_quantile(histogram, edges, 0.5, model.timeout)),
        "p99_latency": float(histogram_quantile(histogram, edges, 0.99, model.timeout)),
        "slo_violation_rate": acc["violations"].sum() / requests.sum(),
        "allocated_cpu": acc["allocated"].sum() / (num_functions * steps),
        "utilization": acc["busy"].sum() / acc["allocated"].sum(),
        "cold_starts_per_hour": acc["cold_starts"].sum() / (num_functions * steps / 60.0),
        "reward": acc["reward"].sum() / (num_functions * steps),
    }
    series = {k: np.asarray(v, np.float64) for k, v in result.series.items()}
    return {"overall": {k: float(v) for k, v in overall.items()}, "per_function": per_function,
            "histogram": histogram, "series": series}


def pool_clusters(result: ParticleResult) -> ParticleResult:
    """R independent clusters (``mfg.serverless.particles.simulate_clusters``) as one population of R N
    functions for ``summarize``: per-function sums are concatenated, cluster series are
    averaged over the clusters (the mean pressure path).

    Summarizing the pool gives each metric's expectation at size N (ratio metrics as
    ratios of the expected sums): every function was simulated under its own cluster's
    N-function mean field.
    """
    per_function = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in result.per_function.items()}
    series = {k: np.asarray(v).mean(0) for k, v in result.series.items()}
    return ParticleResult(per_function, series, result.policy_state)


def cluster(result: ParticleResult, index: int) -> ParticleResult:
    """Cluster ``index`` of a ``simulate_clusters`` result, as a plain one-cluster result."""
    return ParticleResult(*(jax.tree_util.tree_map(lambda x: x[index], part) for part in result))


@dataclasses.dataclass
class PolicyEvaluation:
    """One policy over several seeds: ``runs[i]`` is ``summarize`` of seed i."""

    name: str
    runs: list[dict]

    def metric(self, name: str) -> tuple[float, float]:
        """(mean over seeds, 95% CI half-width) of an overall metric."""
        return confidence_interval([run["overall"][name] for run in self.runs])

    def table_row(self) -> dict[str, tuple[float, float]]:
        return {m: self.metric(m) for m in METRICS}


def evaluate(model: ClusterModel, loads: list, policies: dict[str, Any], *, key: jax.Array | None = None,
             num_steps: int | None = None, prepare: Callable[[str, Any, Any, jax.Array], Any] | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, PolicyEvaluation]:
    """Run every policy on every load (seed i uses ``loads[i]`` and key fold_in(key, i)).

    Args:
      policies: name -> policy (``mfg.serverless.autoscalers``).
      prepare: optional ``(name, policy, load, key) -> policy`` hook run before each
        evaluation (e.g. to train per-function Q-learning on that workload first).
      progress: optional callback receiving a line per finished run.
    """
    key = jax.random.key(0) if key is None else key
    results = {}
    for name, policy in policies.items():
        runs = []
        for seed, load in enumerate(loads):
            seed_key = jax.random.fold_in(key, seed)
            deployed = prepare(name, policy, load, seed_key) if prepare else policy
            result = simulate(model, load, deployed, seed_key, num_steps=num_steps)
            runs.append(summarize(result, model))
            if progress:
                overall = runs[-1]["overall"]
                progress(f"{name} seed {seed}: SLO violations {overall['slo_violation_rate']:.4f}, "
                         f"CPU {overall['allocated_cpu']:.3f}, p99 {overall['p99_latency']:.3f} s")
        results[name] = PolicyEvaluation(name, runs)
    return results
