"""The control loop: observe -> read -> decide -> clamp -> rate-limit -> apply, and a log line per function.

Every decision is logged as one JSON line (``DecisionLog``)::

    {"time": "...", "iteration": 3, "function": "resize-image", "platform": "kubernetes",
     "observed": {"request_rate": 12.5, ...}, "current": {"containers": 2, "cpu": 0.25},
     "decided": {...}, "target": {... clamped to the bounds},
     "outcome": "applied" | "unchanged" | "rate_limited" | "error", "requests": 1, "error": null}

One function's transient failure (a platform that does not answer after the retries) is
logged and does not stop the others; a transient failed observation skips the iteration.
A permanent failure (401, 403, 404, an unreadable observations file) is logged, then
ends the loop with an ``AdapterError`` (``mfg serve`` exits non-zero).  Credentials never reach the
log: it holds metrics, allocations and outcomes only.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import time
from typing import Any, Callable, TextIO

from mfg.serverless.adapters.core import AdapterError, Allocation, Bounds, MetricsSource, Platform, Target

__all__ = ["ControlLoop", "same_allocation"]


def same_allocation(current: Allocation, target: Target) -> bool:
    """True when applying ``target`` would change nothing (CPU compared to the millicore)."""
    return (current.containers == target.containers and round(current.cpu * 1000) == round(target.cpu * 1000)
            and (target.concurrency is None or current.concurrency == target.concurrency))


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _plain(value):
    return None if value is None else {k: v for k, v in dataclasses.asdict(value).items() if k != "name"}


class ControlLoop:
    """Drive ``platform`` with ``decider``'s targets for the functions ``source`` observes.

    Args:
      source: a ``MetricsSource``.
      decider: ``PolicyDecider`` or ``AutoscalerDecider`` (``decide(metrics, current)``).
      platform: a ``Platform`` (Kubernetes, Knative, OpenWhisk, or the simulator).
      bounds: the safety limits (``Bounds``): targets are clamped, and a function is changed
        at most once per ``bounds.cooldown_s`` seconds.
      functions: only these functions (default: every one observed).
      log: where the JSON lines go (default stderr).
      clock: seconds, for the cooldown (tests pass a fake clock).
      stop_on_permanent: a permanent ``AdapterError`` (401, 403, 404, an unreadable
        observations file) ends the loop: ``step`` logs the round, then raises it.
        Transient ones (no answer after the retries) are logged and the loop goes on.
    """

    def __init__(self, source: MetricsSource, decider: Any, platform: Platform, bounds: Bounds = Bounds(),
                 functions: list[str] | None = None, log: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, stop_on_permanent: bool = True):
        self.source, self.decider, self.platform, self.bounds = source, decider, platform, bounds
        self.stop_on_permanent = stop_on_permanent
        self.functions = None if functions is None else set(functions)
        self.log = log
        self.clock = clock
        self.iteration = 0
        self.last_change: dict[str, float] = {}

    def _write(self, record: dict) -> None:
        stream = self.log or sys.stderr
        stream.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        stream.flush()

    def step(self) -> list[dict]:
        """One observation and decision round; returns the records it logged."""
        self.iteration += 1
        base = {"iteration": self.iteration, "platform": getattr(self.platform, "name", "platform")}
        try:
            metrics = self.source.observe()
        except (AdapterError, OSError) as err:
            record = base | {"time": _now_iso(), "outcome": "observe_error", "error": str(err),
                             "permanent": getattr(err, "permanent", False)}
            self._write(record)
            self._stop_if_permanent([record])
            return [record]
        if self.functions is not None:
            metrics = [m for m in metrics if m.name in self.functions]
        records, current, readable = [], {}, []
        for m in metrics:
            try:
                current[m.name] = self.platform.read(m.name)
                readable.append(m)
            except AdapterError as err:
                records.append(base | {"time": _now_iso(), "function": m.name, "observed": _plain(m),
                                       "outcome": "error", "error": f"read: {err}", "permanent": err.permanent})
        decided = {t.name: t for t in self.decider.decide(readable, current)}
        now = self.clock()
        for m in readable:
            decision = decided[m.name]
            target = self.bounds.clamp(decision)
            record = base | {"time": _now_iso(), "function": m.name, "observed": _plain(m),
                             "current": _plain(current[m.name]), "decided": _plain(decision),
                             "target": _plain(target), "requests": 0, "error": None}
            if same_allocation(current[m.name], target):
                record["outcome"] = "unchanged"
            elif (self.bounds.cooldown_s > 0 and m.name in self.last_change
                  and now - self.last_change[m.name] < self.bounds.cooldown_s):
                record["outcome"] = "rate_limited"
            else:
                try:
                    sent = self.platform.apply(target)
                    record["outcome"] = "applied"
                    record["requests"] = len(sent)
                    self.last_change[m.name] = now
                except AdapterError as err:
                    record["outcome"], record["error"], record["permanent"] = "error", str(err), err.permanent
            records.append(record)
        for record in records:
            self._write(record)
        self._stop_if_permanent(records)
        return records

    def _stop_if_permanent(self, records: list[dict]) -> None:
        """Raise ``AdapterError`` when a record holds a permanent error (retrying cannot help)."""
        if not self.stop_on_permanent:
            return
        for record in records:
            if record.get("permanent"):
                where = f"function {record['function']}: " if "function" in record else ""
                raise AdapterError(f"{where}{record['error']} (a permanent error: the loop stops)")

    def run(self, interval_s: float, iterations: int | None = None, sleep: Callable[[float], None] = time.sleep):
        """``step`` every ``interval_s`` seconds, ``iterations`` times (None: until interrupted)."""
        if interval_s <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval_s}")
        done = 0
        try:
            while iterations is None or done < iterations:
                started = time.monotonic()
                try:
                    self.step()
                except EOFError:                     # a stream source ran dry: stop cleanly
                    if done == 0:
                        raise AdapterError("no observation: the input stream is empty") from None
                    return
                done += 1
                if iterations is None or done < iterations:
                    sleep(max(0.0, interval_s - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self._write({"time": _now_iso(), "outcome": "stopped", "iteration": self.iteration})
