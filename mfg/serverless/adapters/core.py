"""What flows through the control loop: observed metrics, allocations, targets, bounds.

    observe  ->  [FunctionMetrics]                      (a metrics source)
    read     ->  Allocation per function                (the platform, the source of truth)
    decide   ->  [Target]                               (a decider: policy or autoscaler)
    clamp    ->  Target within Bounds
    apply    ->  the platform's requests for the target (an adapter)

Targets are absolute (containers, cores per container, concurrency), never deltas, so a
decision applied twice leaves the platform where applying it once does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

__all__ = ["FunctionMetrics", "Allocation", "Target", "Bounds", "MetricsSource", "Platform", "AdapterError",
           "format_cpu", "parse_cpu"]


class AdapterError(RuntimeError):
    """A request the platform refused for good (4xx other than 409/429), or gave up on
    after the retries; the message names the request and the reason, never a credential.

    ``permanent``: retrying cannot help (401, 403, 404, a malformed object, an unreadable
    observations file), so ``mfg serve`` stops; False for a platform that did not answer
    after the retries (the loop carries on with its next round)."""

    def __init__(self, message: str, permanent: bool = True):
        super().__init__(message)
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class FunctionMetrics:
    """One function's load over the last interval (from Prometheus, a JSON file or the simulator).

    Attributes:
      name: the function (Deployment, Knative Service or OpenWhisk action name).
      request_rate: arrivals per second.
      cpu_usage: cores used by all its containers (None: not measured).
      latency_p50, latency_p99: response-time quantiles in seconds (None: not measured).
      concurrency: mean in-flight requests (None: not measured).
    """

    name: str
    request_rate: float
    cpu_usage: float | None = None
    latency_p50: float | None = None
    latency_p99: float | None = None
    concurrency: float | None = None

    def __post_init__(self):
        if not self.name:
            raise ValueError("a function's metrics need its name")
        if not (self.request_rate >= 0 and math.isfinite(self.request_rate)):
            raise ValueError(f"{self.name}: request_rate must be a finite number >= 0, got {self.request_rate!r}")


@dataclasses.dataclass(frozen=True)
class Allocation:
    """What the platform runs now: containers and cores per container (concurrency where it has one)."""

    containers: int
    cpu: float
    concurrency: float | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """The allocation a decider wants for one function (absolute values).

    Attributes:
      containers: replicas (Kubernetes), min-scale = max-scale (Knative).
      cpu: cores per container (Kubernetes/Knative CPU request and limit; OpenWhisk
        maps it to the memory limit, which sets the CPU share there).
      concurrency: soft concurrency target per container (Knative ``target``, OpenWhisk
        ``concurrency``); None leaves the platform's value.
    """

    name: str
    containers: int
    cpu: float
    concurrency: float | None = None

    def allocation(self) -> Allocation:
        return Allocation(self.containers, self.cpu, self.concurrency)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Safety limits every target is clamped to before it is applied.

    Attributes:
      min_containers, max_containers: replicas per function.
      min_cpu, max_cpu: cores per container.
      min_concurrency, max_concurrency: concurrency target per container.
      cooldown_s: at least this many seconds between two changes of one function
        (the per-function rate limit; 0 disables it).
    """

    min_containers: int = 1
    max_containers: int = 8
    min_cpu: float = 0.125
    max_cpu: float = 1.0
    min_concurrency: float = 0.1
    max_concurrency: float = 1000.0
    cooldown_s: float = 0.0

    def __post_init__(self):
        if not 0 <= self.min_containers <= self.max_containers:
            raise ValueError(f"bounds: need 0 <= min_containers <= max_containers, got "
                             f"{self.min_containers}..{self.max_containers}")
        if not 0 < self.min_cpu <= self.max_cpu:
            raise ValueError(f"bounds: need 0 < min_cpu <= max_cpu (cores), got {self.min_cpu}..{self.max_cpu}")
        if not 0 < self.min_concurrency <= self.max_concurrency:
            raise ValueError(f"bounds: need 0 < min_concurrency <= max_concurrency, got "
                             f"{self.min_concurrency}..{self.max_concurrency}")
        if self.cooldown_s < 0:
            raise ValueError(f"bounds: cooldown_s must be >= 0, got {self.cooldown_s}")

    def clamp(self, target: Target) -> Target:
        concurrency = target.concurrency
        if concurrency is not None:
            concurrency = min(max(float(concurrency), self.min_concurrency), self.max_concurrency)
        return Target(target.name, int(min(max(int(target.containers), self.min_containers), self.max_containers)),
                      min(max(float(target.cpu), self.min_cpu), self.max_cpu), concurrency)


class MetricsSource(Protocol):
    """Where the loop reads the load: ``observe()`` returns one record per function."""

    def observe(self) -> list[FunctionMetrics]: ...


class Platform(Protocol):
    """Where the loop reads and writes allocations.

    ``read(name)`` returns the function's current ``Allocation``; ``apply(target)``
    makes the platform run ``target`` (already clamped) and returns the requests it
    sent (or, in dry-run, would send); both raise ``AdapterError`` when the platform
    refuses or stays unreachable.
    """

    name: str

    def read(self, function: str) -> Allocation: ...

    def apply(self, target: Target) -> list: ...


def format_cpu(cores: float) -> str:
    """Kubernetes quantity in millicores: 0.25 -> "250m"."""
    return f"{int(round(cores * 1000))}m"


def parse_cpu(quantity: str | int | float) -> float:
    """Kubernetes CPU quantity to cores: "250m" -> 0.25, "1" -> 1.0, "1.5" -> 1.5."""
    text = str(quantity).strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise AdapterError(f"cannot read the CPU quantity {quantity!r} (expected e.g. '250m' or '1')") from None
