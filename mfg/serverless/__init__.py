"""The serverless application, rebuilt at a platform's time resolution (issue 15, in progress).

  ``hpa``        the Kubernetes Horizontal Pod Autoscaler, as its controller decides
  ``kpa``        the Knative Pod Autoscaler, as its decider and scale-to-zero reconciler decide
  ``workload``   the trace at a tick dt: arrivals per tick (Poisson or over-dispersed),
                 service times and SLOs from the durations, the violations floor

tests/serverless_des.py is the request-level reference simulator (plain Python) that
the vectorized tick simulator, still to come, will be checked against.

Each is a pure, vectorized function of what the platform measures (one row per function)
and of the rule's own state, so that a simulator can call it for 10^5 functions in one
jitted step, and a test can drive it with scripted metric series and compare every
decision with the upstream algorithm worked out by hand (tests/test_upstream_autoscalers.py).

The minute-step model the application uses today lives in ``mfg.cluster``,
``mfg.particles`` and ``mfg.autoscalers``; docs/serverless.md describes it.
"""

from mfg.serverless.hpa import HPAConfig, HPAState, hpa_init, hpa_decide, hpa_replicas
from mfg.serverless.kpa import KPAConfig, KPAState, kpa_init, kpa_decide, kpa_scale

__all__ = ["HPAConfig", "HPAState", "hpa_init", "hpa_decide", "hpa_replicas",
           "KPAConfig", "KPAState", "kpa_init", "kpa_decide", "kpa_scale"]
