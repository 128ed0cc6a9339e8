"""The serverless application: functions competing for a shared cluster, in one package.

The general MFG library is ``mfg`` around it (games, oracles, features, the N-player
game) and ``solvers``; everything about serverless clusters is here:

  ``game``         the tabular serverless game (registered as ``mfg.games.serverless``)
  ``cluster``      its cluster model: contention, service, latency, reward (``ClusterModel``)
  ``queueing``     M/M/c formulas (Erlang C, response-time tails and quantiles)
  ``workloads``    the Azure Functions 2019 trace format: reader, writer, synthetic days
  ``particles``    the particle simulator at one-minute steps (the model of the comparison
                   in docs/serverless.md today)
  ``autoscalers``  the baselines and tabular policies on that simulator
  ``evaluation``   metrics of a simulated episode (SLO violations, latency, CPU)
  ``adapters``     the control loop and the Kubernetes, Knative and OpenWhisk adapters
                   (``mfg serve``; docs/deploy.md)

and the simulator at a platform's time resolution (issue 15):

  ``simulator``    the tick simulator: N functions, 2 s ticks, decisions from past
                   measurements, backlogs, cold starts, scale to zero, cpu.shares contention
  ``platform``     its constants (``Platform``), the cpu.shares water-filling, Erlang C tables
  ``policies``     the policies it runs: the upstream KPA and HPA, static, scripted sizes,
                   and a tabular game's policy
  ``learned``      the MFG policy learned online in it: the natural actor-critic on the
                   N functions (linear; ``learned_neural``: flax.nnx MLPs), target
                   actions (a KPA target per function) or one-step moves
  ``target_game``  the tabular game coarse-grained from it (target actions, the same
                   reward): the online learner's exact oracle, mean-field control and
                   the price of anarchy
  ``comparison``   its training protocol (another day, independent RL without
                   contention) and the metrics, frontiers and verdicts of a comparison
  ``settings``     workloads from a trace (service times, SLOs) and the roomy / tight /
                   congested cluster settings
  ``hpa``          the Kubernetes Horizontal Pod Autoscaler, as its controller decides
  ``kpa``          the Knative Pod Autoscaler, as its decider and scale-to-zero reconciler decide
  ``demand``       the trace at a tick dt: arrivals per tick (Poisson or over-dispersed),
                   service times and SLOs from the durations, the violations floor

tests/serverless_des.py is the request-level reference simulator (plain Python) that the
tick simulator is checked against (tests/test_simulator_des.py).  Submodules are
imported on demand.
"""

from mfg.serverless.hpa import HPAConfig, HPAState, hpa_decide, hpa_init, hpa_replicas
from mfg.serverless.kpa import KPAConfig, KPAState, kpa_decide, kpa_init, kpa_scale

__all__ = ["HPAConfig", "HPAState", "hpa_init", "hpa_decide", "hpa_replicas",
           "KPAConfig", "KPAState", "kpa_init", "kpa_decide", "kpa_scale"]
