"""Where the control loop reads the load: a JSON document, or the Prometheus HTTP query API.

JSON (a file re-read at every observation, or ``-``: one document per line on stdin)::

    {"functions": [{"name": "resize-image", "request_rate": 12.5, "cpu_usage": 0.8,
                    "latency_p50": 0.04, "latency_p99": 0.35, "concurrency": 1.2}, ...]}

(a bare list of such records is accepted too).  Only ``name`` and ``request_rate``
(requests/s) are required.

Prometheus: one instant query per field, ``GET /api/v1/query?query=...``, each returning
a vector with one sample per function, told apart by the ``label`` label.  The queries
are templates (``{label}``, ``{window}``), ``DEFAULT_QUERIES`` shows the metric names they
expect; any field may be given another query, or dropped (then it is not measured).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import TextIO

from mfg.serverless.adapters.core import AdapterError, FunctionMetrics
from mfg.serverless.adapters.http import Request, RetryPolicy, Transport, send

__all__ = ["JsonSource", "PrometheusSource", "DEFAULT_QUERIES", "metrics_from_json"]

FIELDS = tuple(f.name for f in dataclasses.fields(FunctionMetrics))

DEFAULT_QUERIES = {
    "request_rate": "sum by ({label}) (rate(function_requests_total[{window}]))",
    "cpu_usage": "sum by ({label}) (rate(function_cpu_seconds_total[{window}]))",
    "latency_p50": "histogram_quantile(0.5, sum by ({label}, le) (rate(function_request_duration_seconds_bucket[{window}])))",
    "latency_p99": "histogram_quantile(0.99, sum by ({label}, le) (rate(function_request_duration_seconds_bucket[{window}])))",
    "concurrency": "sum by ({label}) (function_in_flight_requests)",
}


def metrics_from_json(document, where: str = "observations") -> list[FunctionMetrics]:
    """Validate a decoded JSON document (see the module docstring) into metrics records."""
    records = document.get("functions") if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise AdapterError(f"{where}: expected {{\"functions\": [...]}} or a list of function records")
    metrics = []
    for k, record in enumerate(records):
        if not isinstance(record, dict):
            raise AdapterError(f"{where}: record {k} is not an object")
        unknown = sorted(set(record) - set(FIELDS))
        if unknown:
            raise AdapterError(f"{where}: record {k} has unknown field(s) {unknown}; allowed: {list(FIELDS)}")
        if "name" not in record or "request_rate" not in record:
            raise AdapterError(f"{where}: record {k} needs 'name' and 'request_rate' (requests/s)")
        try:
            metrics.append(FunctionMetrics(**{f: (str(v) if f == "name" else None if v is None else float(v))
                                              for f, v in record.items()}))
        except (TypeError, ValueError) as err:
            raise AdapterError(f"{where}: record {k}: {err}") from None
    return metrics


class JsonSource:
    """Metrics from a JSON file (re-read at every ``observe``) or from a stream, one document per line."""

    def __init__(self, path: str | Path, stream: TextIO | None = None):
        self.path = str(path)
        self.stream = stream if stream is not None else (sys.stdin if self.path == "-" else None)

    def observe(self) -> list[FunctionMetrics]:
        if self.stream is not None:
            line = self.stream.readline()
            if not line:
                raise EOFError("no more observations on the input stream")
            text, where = line, f"{self.path} (line)"
        else:
            try:
                text, where = Path(self.path).read_text(), self.path
            except OSError as err:
                raise AdapterError(f"cannot read the observations file: {err}") from None
        try:
            document = json.loads(text)
        except ValueError as err:
            raise AdapterError(f"{where}: not valid JSON ({err})") from None
        return metrics_from_json(document, where)


class PrometheusSource:
    """Metrics from Prometheus's instant queries.

    Args:
      transport: a transport to the Prometheus base URL (``UrllibTransport(url)``).
      queries: field -> PromQL template (default ``DEFAULT_QUERIES``); ``request_rate``
        is required.
      label: the label that names the function in every query's result.
      window: the rate window substituted for ``{window}``.
    """

    def __init__(self, transport: Transport, queries: dict[str, str] | None = None, label: str = "function",
                 window: str = "1m", retry: RetryPolicy = RetryPolicy()):
        queries = dict(DEFAULT_QUERIES if queries is None else queries)
        unknown = sorted(set(queries) - set(FIELDS[1:]))
        if unknown:
            raise ValueError(f"prometheus queries for unknown field(s) {unknown}; allowed: {list(FIELDS[1:])}")
        if "request_rate" not in queries:
            raise ValueError("prometheus queries must include 'request_rate'")
        self.transport, self.label, self.window, self.retry = transport, label, window, retry
        self.queries = {field: query.format(label=label, window=window) for field, query in queries.items()}

    def query(self, promql: str) -> dict[str, float]:
        """Function name -> value of one instant query (NaN samples are dropped)."""
        response = send(self.transport, Request("GET", "/api/v1/query", query=(("query", promql),)), self.retry,
                        accept=(400, 422))             # a bad query, or one that failed to run
        body = response.body
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error", body) if isinstance(body, dict) else body
            raise AdapterError(f"prometheus query {promql!r} failed: {str(reason)[:200]}")
        data = body["data"]
        if data.get("resultType") != "vector":
            raise AdapterError(f"prometheus query {promql!r} returned a {data.get('resultType')}, not a vector")
        values = {}
        for sample in data["result"]:
            name = sample["metric"].get(self.label)
            value = float(sample["value"][1])
            if name is not None and math.isfinite(value):
                values[name] = value
        return values

    def observe(self) -> list[FunctionMetrics]:
        results = {field: self.query(promql) for field, promql in self.queries.items()}
        return [FunctionMetrics(name, rate, **{f: results[f].get(name) for f in results if f != "request_rate"})
                for name, rate in sorted(results["request_rate"].items())]
