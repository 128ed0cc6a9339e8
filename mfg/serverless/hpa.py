"""The Kubernetes Horizontal Pod Autoscaler on CPU utilization, as its controller decides.

Sources (kubernetes/kubernetes, pkg/controller/podautoscaler/):

* ``replica_calculator.go``, ``GetResourceReplicas``: with U the mean utilization of the
  ready pods (usage / request) and T the target, r = U / T.  Pods that are not ready
  yet (starting) are left out; on a scale-up (r > 1) they are put back at 0% usage and
  the ratio recomputed, r' = U n_ready / ((n_ready + n_unready) T), and the scale-up is
  dropped when r' no longer says "up".  Within the tolerance, |1 - r| <= 0.1, the count
  stays.  Otherwise desired = ceil(r n_ready) (ceil(r' (n_ready + n_unready)) with the
  unready pods put back).
* ``horizontal.go``, ``stabilizeRecommendationWithBehaviors`` and
  ``convertDesiredReplicasWithBehaviorRate`` with the autoscaling/v2 default behavior
  (``pkg/apis/autoscaling/v2/defaults.go``): scale-down stabilization 300 s (the highest
  recommendation of the window is kept), scale-up stabilization 0 s; scale-up limited to
  max(+4 pods, ceil(+100%)) per 15 s from the count at the start of the period,
  scale-down to int(-100%) per 15 s; then [min_replicas, max_replicas].
* Sync period 15 s (``--horizontal-pod-autoscaler-sync-period``), tolerance 0.1
  (``--horizontal-pod-autoscaler-tolerance``), default target 80% CPU.

Every function decides at the same instants (the controller's sync), so the windows are
kept as the last ``window`` recommendations of every function ([N, W]) with their
shared times ([W]).  All arrays are [N] (one row per function) unless said otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["HPAConfig", "HPAState", "hpa_init", "hpa_replicas", "hpa_decide"]


@dataclasses.dataclass(frozen=True)
class HPAConfig:
    """The HPA's settings (defaults: upstream's; the knob swept is ``target_utilization``).

    Attributes:
      target_utilization: T, the CPU usage / request the HPA aims at (0.8 upstream).
      tolerance: no change while |1 - U / T| <= tolerance.
      sync_period: seconds between decisions.
      downscale_stabilization, upscale_stabilization: windows (s) of the stabilization.
      scale_up_pods, scale_up_percent, scale_up_period: the scale-up policies (the larger
        of +pods and +percent from the count at the start of the last period).
      scale_down_percent, scale_down_period: the scale-down policy.
      min_replicas, max_replicas: the HPA's bounds (the HPA never scales to zero).
    """

    target_utilization: float = 0.8
    tolerance: float = 0.1
    sync_period: float = 15.0
    downscale_stabilization: float = 300.0
    upscale_stabilization: float = 0.0
    scale_up_pods: int = 4
    scale_up_percent: float = 100.0
    scale_up_period: float = 15.0
    scale_down_percent: float = 100.0
    scale_down_period: float = 15.0
    min_replicas: int = 1
    max_replicas: int = 100

    def __post_init__(self):
        checks = [("target_utilization", self.target_utilization > 0), ("tolerance", self.tolerance >= 0),
                  ("sync_period", self.sync_period > 0), ("downscale_stabilization", self.downscale_stabilization >= 0),
                  ("upscale_stabilization", self.upscale_stabilization >= 0), ("scale_up_pods", self.scale_up_pods >= 0),
                  ("scale_up_percent", self.scale_up_percent >= 0), ("scale_up_period", self.scale_up_period > 0),
                  ("scale_down_percent", 0 <= self.scale_down_percent <= 100),
                  ("scale_down_period", self.scale_down_period > 0),
                  ("min_replicas", self.min_replicas >= 1), ("max_replicas", self.max_replicas >= self.min_replicas)]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"HPAConfig.{name} is out of range: {getattr(self, name)!r} (see the docstring)")

    @property
    def window(self) -> int:
        """Recommendations kept: enough decisions to cover the longest window."""
        longest = max(self.downscale_stabilization, self.upscale_stabilization, self.scale_up_period,
                      self.scale_down_period)
        return int(math.ceil(longest / self.sync_period)) + 1


class HPAState(NamedTuple):
    """The controller's memory: past recommendations and replica counts, newest last.

    recommendations: [N, W] the prenormalized recommendations of past decisions.
    replicas: [N, W] the replica count each past decision set.
    times: [W] when they were made (s); -inf for empty slots.
    """

    recommendations: jax.Array
    replicas: jax.Array
    times: jax.Array


def hpa_init(config: HPAConfig, replicas: jax.Array) -> HPAState:
    """An HPA that has not decided yet, for functions currently at ``replicas`` [N]."""
    replicas = jnp.asarray(replicas, jnp.int32)
    shape = replicas.shape + (config.window,)
    return HPAState(jnp.broadcast_to(replicas[..., None], shape), jnp.broadcast_to(replicas[..., None], shape),
                    jnp.full((config.window,), -jnp.inf))


@functools.partial(jax.jit, static_argnums=0)
def hpa_replicas(config: HPAConfig, current: jax.Array, ready: jax.Array, unready: jax.Array,
                 utilization: jax.Array) -> jax.Array:
    """``GetResourceReplicas``: the replica count the metrics ask for, before the behavior.

    Args:
      current: replicas in the spec (ready + starting).
      ready: pods that are ready and report a CPU sample.
      unready: pods not ready yet (starting: their cold start is not over).
      utilization: the ready pods' mean CPU usage / request (may exceed 1 when the limit
        is above the request).
    Returns:
      [N] int32; ``current`` where no pod reports (upstream: "did not receive metrics").
    """
    current = jnp.asarray(current, jnp.int32)
    ready_f = jnp.asarray(ready, jnp.float32)
    unready_f = jnp.asarray(unready, jnp.float32)
    ratio = jnp.asarray(utilization, jnp.float32) / config.target_utilization
    within = jnp.abs(1.0 - ratio) <= config.tolerance
    plain = jnp.where(within, current, jnp.ceil(ratio * ready_f).astype(jnp.int32))
    # a scale-up with pods still starting: they count at 0% usage
    total = ready_f + unready_f
    new_ratio = ratio * ready_f / jnp.maximum(total, 1.0)
    keep = (jnp.abs(1.0 - new_ratio) <= config.tolerance) | (new_ratio < 1.0)
    rebalanced = jnp.ceil(new_ratio * total).astype(jnp.int32)
    rebalanced = jnp.where(keep | (rebalanced < current), current, rebalanced)
    desired = jnp.where((unready_f > 0) & (ratio > 1.0), rebalanced, plain)
    return jnp.where(ready_f > 0, desired, current)


@functools.partial(jax.jit, static_argnums=0)
def hpa_decide(config: HPAConfig, state: HPAState, now: jax.Array, current: jax.Array, ready: jax.Array,
               unready: jax.Array, utilization: jax.Array) -> tuple[jax.Array, HPAState]:
    """One sync of the controller at time ``now`` (s): (desired replicas [N], new state).

    The recommendation of ``hpa_replicas`` is stabilized (scale-down: the highest of the
    last ``downscale_stabilization`` seconds; scale-up: the lowest of the last
    ``upscale_stabilization`` seconds; the current count in between), then limited by the
    scale-up and scale-down policies, then clamped to [min_replicas, max_replicas].
    """
    current = jnp.asarray(current, jnp.int32)
    now = jnp.asarray(now, jnp.float32)
    recommendation = jnp.clip(hpa_replicas(config, current, ready, unready, utilization), 0, None)
    # stabilizeRecommendationWithBehaviors: the window includes the new recommendation
    in_up = state.times > now - config.upscale_stabilization
    in_down = state.times > now - config.downscale_stabilization
    big = jnp.iinfo(jnp.int32).max
    up = jnp.minimum(recommendation, jnp.min(jnp.where(in_up, state.recommendations, big), axis=-1))
    down = jnp.maximum(recommendation, jnp.max(jnp.where(in_down, state.recommendations, -1), axis=-1))
    stabilized = jnp.clip(current, up, down)
    # convertDesiredReplicasWithBehaviorRate: the count at the start of each policy period
    # is the count before the first change made within it (else the current count)
    start_up = _period_start(state, now, config.scale_up_period, current)
    start_down = _period_start(state, now, config.scale_down_period, current)
    up_limit = jnp.maximum(start_up + config.scale_up_pods,
                           jnp.ceil(start_up * (1 + config.scale_up_percent / 100)).astype(jnp.int32))
    up_limit = jnp.minimum(jnp.maximum(up_limit, current), config.max_replicas)
    down_limit = jnp.floor(start_down * (1 - config.scale_down_percent / 100)).astype(jnp.int32)  # int32()
    down_limit = jnp.maximum(jnp.minimum(down_limit, current), config.min_replicas)
    desired = jnp.where(stabilized > current, jnp.minimum(stabilized, up_limit),
                        jnp.where(stabilized < current, jnp.maximum(stabilized, down_limit), current))
    desired = jnp.clip(desired, config.min_replicas, config.max_replicas).astype(jnp.int32)
    new_state = HPAState(jnp.concatenate([state.recommendations[..., 1:], recommendation[..., None]], -1),
                         jnp.concatenate([state.replicas[..., 1:], desired[..., None]], -1),
                         jnp.concatenate([state.times[1:], now[None]]))
    return desired, new_state


def _period_start(state: HPAState, now, period: float, current):
    """Replicas at the start of the last ``period`` seconds: the count set by the newest
    decision made before the period began (the oldest in-period one's predecessor)."""
    before = state.times <= now - period
    # index of the newest slot made before the period (slots are oldest first)
    index = jnp.max(jnp.where(before, jnp.arange(state.times.shape[0]), -1))
    start = jnp.take(state.replicas, jnp.maximum(index, 0), axis=-1)
    return jnp.where(index >= 0, start, current)
