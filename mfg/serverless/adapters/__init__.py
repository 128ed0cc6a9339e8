"""Cluster adapters: run a trained policy (or a baseline autoscaler) against a real platform.

One interface, observe -> decide -> apply:

  sources      ``JsonSource``, ``PrometheusSource``, and ``SimulatedCluster``
  deciders     ``PolicyDecider`` (an exported policy, numpy only), ``AutoscalerDecider``
  platforms    ``KubernetesPlatform``, ``KnativePlatform``, ``OpenWhiskPlatform``,
               ``SimulatedCluster``
  loop         ``ControlLoop`` (clamping to ``Bounds``, per-function cooldown, JSON logs)
  transport    ``mfg.serverless.adapters.http``: requests as values, one retry rule, dry-run

``mfg serve`` (experiments/cli.py) wires them from the command line; docs/deploy.md
shows the requests each platform receives.
"""

from mfg.serverless.adapters.core import AdapterError, Allocation, Bounds, FunctionMetrics, Target
from mfg.serverless.adapters.deciders import AutoscalerDecider, PolicyDecider
from mfg.serverless.adapters.http import (DryRunTransport, KubernetesTransport, Request, Response, RetryPolicy,
                               UrllibTransport, send)
from mfg.serverless.adapters.knative import KnativePlatform
from mfg.serverless.adapters.kubernetes import KubernetesPlatform
from mfg.serverless.adapters.loop import ControlLoop
from mfg.serverless.adapters.openwhisk import OpenWhiskPlatform
from mfg.serverless.adapters.sources import DEFAULT_QUERIES, JsonSource, PrometheusSource

__all__ = ["AdapterError", "Allocation", "Bounds", "FunctionMetrics", "Target", "AutoscalerDecider",
           "PolicyDecider", "DryRunTransport", "KubernetesTransport", "Request", "Response", "RetryPolicy",
           "UrllibTransport", "send", "KnativePlatform", "KubernetesPlatform", "ControlLoop", "OpenWhiskPlatform",
           "DEFAULT_QUERIES", "JsonSource", "PrometheusSource"]
