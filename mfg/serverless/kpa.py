"""The Knative Pod Autoscaler, as its decider and its scale-to-zero reconciler decide.

Sources (knative/serving):

* ``pkg/autoscaler/scaling/autoscaler.go``, ``Scale``: with n = max(1, ready pods), S and
  P the concurrency averaged over the stable and the panic window, and t the per-pod
  target value,
      dspc = ceil(S / t),  dppc = ceil(P / t),
      each clamped to [floor(n / max_scale_down_rate), ceil(max_scale_up_rate n)]
      (the lower bound is 0 while the revision is unreachable);
  panic starts (or is extended) at a tick where dppc / n >= panic_threshold, and ends
  at the first tick over no threshold that is more than one stable window after the
  last tick over it.  In panic the desired count is max(stable, panic) and never falls
  below the highest count of the panic (``maxPanicPods``).  The excess burst capacity
  is floor(ready x total value - target burst capacity - P); below 0 the activator stays
  in the request path.
* ``pkg/autoscaler/config/config.go`` and ``config/core/configmaps/autoscaler.yaml``:
  container-concurrency-target-default 100, target utilization 70%, stable window 60 s,
  panic window 10% of it, panic threshold 200%, max scale-up rate 1000, max scale-down
  rate 2, target burst capacity 211, scale to zero on with a 30 s grace period, a tick
  every 2 s (``pkg/autoscaler/scaling/multiscaler.go``).  With a container concurrency
  limit cc > 0 the per-pod target is min(100, cc); the target value is that times the
  utilization (cc = 1, OpenWhisk's default: 0.7 in flight per pod).
* ``pkg/reconciler/autoscaling/kpa/scaler.go``, ``handleScaleToZero``: a desired count
  of 0 is applied only when scale to zero is on, and the revision was active for at
  least one stable window (it is then marked inactive, its last pod kept), and has been
  inactive (behind the activator) for the grace period; until then one pod stays.

All arrays are [N] (one row per function); times in seconds.  The window averages S and
P are the simulator's (what the queue-proxies and the activator report).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["KPAConfig", "KPAState", "kpa_init", "kpa_scale", "kpa_decide"]


@dataclasses.dataclass(frozen=True)
class KPAConfig:
    """The KPA's settings (defaults: upstream's; the knob swept is ``target``).

    Attributes:
      target: per-pod concurrency target before the utilization
        (container-concurrency-target-default).
      container_concurrency: the hard limit of in-flight requests per pod (0: none).
      target_utilization: the fraction of the target aimed at.
      tick: seconds between decisions.
      stable_window: seconds of the stable average; panic_window_percentage: the panic
        window as a percentage of it.
      panic_threshold: dppc / ready at which panic starts (2.0 = 200%).
      max_scale_up_rate, max_scale_down_rate: the clamps of the desired count.
      target_burst_capacity: the spare concurrency that keeps the activator out of the path.
      scale_to_zero: whether a revision may go to zero pods; scale_to_zero_grace: seconds
        behind the activator before it does.
      min_scale, max_scale: the revision's bounds (max_scale 0: no bound).
    """

    target: float = 100.0
    container_concurrency: int = 0
    target_utilization: float = 0.7
    tick: float = 2.0
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    target_burst_capacity: float = 211.0
    scale_to_zero: bool = True
    scale_to_zero_grace: float = 30.0
    min_scale: int = 0
    max_scale: int = 0

    def __post_init__(self):
        checks = [("target", self.target > 0), ("container_concurrency", self.container_concurrency >= 0),
                  ("target_utilization", 0 < self.target_utilization <= 1), ("tick", self.tick > 0),
                  ("stable_window", self.stable_window > 0),
                  ("panic_window_percentage", 0 < self.panic_window_percentage <= 100),
                  ("panic_threshold", self.panic_threshold > 1), ("max_scale_up_rate", self.max_scale_up_rate > 1),
                  ("max_scale_down_rate", self.max_scale_down_rate > 1),
                  ("target_burst_capacity", self.target_burst_capacity >= -1),
                  ("scale_to_zero_grace", self.scale_to_zero_grace >= 0), ("min_scale", self.min_scale >= 0),
                  ("max_scale", self.max_scale == 0 or self.max_scale >= max(self.min_scale, 1))]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"KPAConfig.{name} is out of range: {getattr(self, name)!r} (see the docstring)")

    @property
    def total_value(self) -> float:
        """A pod's concurrency capacity: min(target, container_concurrency) (cc 0: target)."""
        return min(self.target, self.container_concurrency) if self.container_concurrency > 0 else self.target

    @property
    def target_value(self) -> float:
        """t, the concurrency per pod the KPA sizes for."""
        return self.total_value * self.target_utilization

    @property
    def panic_window(self) -> float:
        return self.stable_window * self.panic_window_percentage / 100

    @property
    def stable_ticks(self) -> int:
        return int(math.ceil(self.stable_window / self.tick))


class KPAState(NamedTuple):
    """The decider's and the reconciler's memory, per function [N].

    panic_time: the last tick over the panic threshold while panicking (-inf: not).
    max_panic_pods: the highest desired count of the current panic.
    active_since: when the revision last became active (had a desired count > 0).
    inactive_since: when it was marked inactive (inf: active).
    """

    panic_time: jax.Array
    max_panic_pods: jax.Array
    active_since: jax.Array
    inactive_since: jax.Array


def kpa_init(num_functions: int, now: float = 0.0) -> KPAState:
    """Active revisions, not panicking, at time ``now``."""
    return KPAState(jnp.full((num_functions,), -jnp.inf), jnp.zeros((num_functions,), jnp.int32),
                    jnp.full((num_functions,), float(now)), jnp.full((num_functions,), jnp.inf))


@functools.partial(jax.jit, static_argnums=0)
def kpa_scale(config: KPAConfig, state: KPAState, now: jax.Array, ready: jax.Array, stable: jax.Array,
              panic: jax.Array, reachable: bool | jax.Array = True, target_value: jax.Array | None = None
              ) -> tuple[jax.Array, jax.Array, KPAState]:
    """``Scale``: (desired pods, excess burst capacity, state) at time ``now``.

    Args:
      ready: ready pods; stable, panic: concurrency (in-flight requests, all pods and the
        activator together) averaged over the stable and the panic window.
      reachable: False while the revision is not reachable (then no scale-down clamp).
      target_value: per-function t ([N]) in place of ``config.target_value`` (a policy
        that picks each function's target, e.g. Q-learning).
    """
    now = jnp.asarray(now, jnp.float32)
    ready = jnp.asarray(ready, jnp.float32)
    n = jnp.maximum(1.0, ready)
    max_up = jnp.ceil(config.max_scale_up_rate * n)
    max_down = jnp.where(reachable, jnp.floor(n / config.max_scale_down_rate), 0.0)
    target = config.target_value if target_value is None else jnp.asarray(target_value, jnp.float32)
    dspc = jnp.ceil(jnp.asarray(stable, jnp.float32) / target)
    dppc = jnp.ceil(jnp.asarray(panic, jnp.float32) / target)
    stable_pods = jnp.clip(dspc, max_down, max_up).astype(jnp.int32)
    panic_pods = jnp.clip(dppc, max_down, max_up).astype(jnp.int32)
    over = dppc / n >= config.panic_threshold
    panicking = jnp.isfinite(state.panic_time)
    ends = panicking & ~over & (state.panic_time + config.stable_window < now)
    panic_time = jnp.where(over, now, jnp.where(ends, -jnp.inf, state.panic_time))
    max_panic = jnp.where(ends, 0, state.max_panic_pods)
    in_panic = jnp.isfinite(panic_time)
    desired = jnp.where(in_panic, jnp.maximum(stable_pods, panic_pods), stable_pods)
    desired = jnp.where(in_panic, jnp.maximum(desired, max_panic), desired)
    max_panic = jnp.where(in_panic, jnp.maximum(max_panic, desired), max_panic)
    if config.target_burst_capacity == 0:
        excess = jnp.zeros_like(ready)
    elif config.target_burst_capacity < 0:
        excess = jnp.full_like(ready, -1.0)
    else:
        excess = jnp.floor(ready * config.total_value - config.target_burst_capacity - jnp.asarray(panic, jnp.float32))
    return desired, excess, state._replace(panic_time=panic_time, max_panic_pods=max_panic)


@functools.partial(jax.jit, static_argnums=0)
def kpa_decide(config: KPAConfig, state: KPAState, now: jax.Array, ready: jax.Array, stable: jax.Array,
               panic: jax.Array, target_value: jax.Array | None = None) -> tuple[jax.Array, KPAState]:
    """One tick: the decider's count, then the scale-to-zero rule and the bounds.

    Returns (pods to run [N] int32, state).  ``target_value``: as in ``kpa_scale``.
    """
    now = jnp.asarray(now, jnp.float32)
    desired, _, state = kpa_scale(config, state, now, ready, stable, panic, target_value=target_value)
    active = ~jnp.isfinite(state.inactive_since)
    wants_zero = desired == 0
    if config.scale_to_zero:
        # active for a stable window: mark inactive (keep the last pod); inactive for the grace: go to 0
        deactivate = active & wants_zero & (now - state.active_since >= config.stable_window)
        inactive_since = jnp.where(deactivate, now, state.inactive_since)
        inactive = jnp.isfinite(inactive_since)
        applied = jnp.where(wants_zero & inactive & (now - inactive_since >= config.scale_to_zero_grace), 0,
                            jnp.maximum(desired, 1))
    else:
        inactive_since = state.inactive_since
        applied = jnp.maximum(desired, 1)
    reactivate = ~wants_zero
    active_since = jnp.where(reactivate & jnp.isfinite(inactive_since), now, state.active_since)
    inactive_since = jnp.where(reactivate, jnp.inf, inactive_since)
    applied = jnp.maximum(applied, config.min_scale)
    if config.max_scale > 0:
        applied = jnp.minimum(applied, config.max_scale)
    return applied.astype(jnp.int32), state._replace(active_since=active_since, inactive_since=inactive_since)
