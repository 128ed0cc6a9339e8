"""``mfg serve``: the control loop from the command line (see docs/deploy.md).

    mfg serve --platform kubernetes|knative|openwhisk
              (--policy POLICY_DIR | --autoscaler hpa|kpa|static)
              (--prometheus URL | --observations FILE|-)
              [--dry-run] [--once | --iterations K] [--interval SECONDS] ...

Credentials come from the environment only and are never logged:
  Kubernetes, Knative  the kubeconfig (KUBECONFIG or ~/.kube/config; --kube-context),
                       or the in-cluster service account
  OpenWhisk            OPENWHISK_AUTH="uuid:key" (as ``wsk property get --auth`` shows it)
  Prometheus           PROMETHEUS_BEARER_TOKEN, when the server wants one
TLS certificates are verified unless --insecure is given.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_arguments", "build_loop", "serve", "check_arguments"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", required=True, choices=["kubernetes", "knative", "openwhisk"])
    decide = p.add_mutually_exclusive_group(required=True)
    decide.add_argument("--policy", help="an exported policy folder (mfg export)")
    decide.add_argument("--autoscaler", choices=["hpa", "kpa", "static"], help="a baseline autoscaler instead")
    p.add_argument("--autoscaler-target", type=float, default=None,
                   help="hpa: target CPU utilization (0.7); kpa: target concurrency per container (0.7); "
                        "static: containers (2)")
    observe = p.add_mutually_exclusive_group(required=True)
    observe.add_argument("--prometheus", metavar="URL", help="Prometheus base URL (HTTP query API)")
    observe.add_argument("--observations", metavar="FILE", help="JSON metrics file, or - for JSON lines on stdin")
    p.add_argument("--queries", metavar="FILE.yaml", help="PromQL templates per field (default: DEFAULT_QUERIES)")
    p.add_argument("--label", default="function", help="the label naming the function in query results")
    p.add_argument("--window", default="1m", help="rate window of the queries (default 1m)")
    p.add_argument("--namespace", default=None, help="namespace (default: 'default'; OpenWhisk: '_')")
    p.add_argument("--functions", help="comma-separated function names (default: every one observed)")
    p.add_argument("--openwhisk-url", help="OpenWhisk API host, e.g. https://openwhisk.example.com")
    p.add_argument("--memory-per-core", type=float, default=1024.0, help="OpenWhisk: MB of memory per core")
    p.add_argument("--kube-context", help="kubeconfig context (default: the current one)")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (OpenWhisk, Prometheus)")
    p.add_argument("--ca-file", help="CA bundle to verify TLS certificates with")
    p.add_argument("--dry-run", action="store_true",
                   help="print the write requests as JSON lines instead of sending them (reads are sent)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between decisions (default 60)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--once", action="store_true", help="one decision round, then exit")
    runs.add_argument("--iterations", type=int, help="this many rounds, then exit (default: until interrupted)")
    p.add_argument("--min-containers", type=int, default=1)
    p.add_argument("--max-containers", type=int, default=8)
    p.add_argument("--min-cpu", type=float, default=0.125, help="cores per container")
    p.add_argument("--max-cpu", type=float, default=1.0, help="cores per container")
    p.add_argument("--cooldown", type=float, default=0.0, help="seconds between two changes of one function")
    p.add_argument("--greedy", action="store_true", help="play the policy's most likely move instead of sampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    p.add_argument("--retries", type=int, default=5,
                   help="attempts per HTTP request before a round gives up on it (backoff 0.5 s, doubling; default 5)")
    p.add_argument("--log", help="append the decision log (JSON lines) to this file (default: stderr)")


def _source(args):
    from mfg.serverless.adapters import JsonSource, PrometheusSource, UrllibTransport

    if args.observations is not None:
        return JsonSource(args.observations)
    headers = {}
    if os.environ.get("PROMETHEUS_BEARER_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["PROMETHEUS_BEARER_TOKEN"]
    queries = None
    if args.queries:
        import yaml

        try:
            with open(args.queries) as f:
                queries = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ValueError(f"--queries {args.queries}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(queries, dict) or not all(isinstance(v, str) for v in queries.values()):
            raise ValueError(f"--queries {args.queries}: expected a mapping field -> PromQL string")
    return PrometheusSource(UrllibTransport(args.prometheus, headers, args.timeout, not args.insecure, args.ca_file),
                            queries, args.label, args.window, retry=_retry(args))


def _retry(args):
    from mfg.serverless.adapters.http import RetryPolicy

    return RetryPolicy(max_attempts=args.retries)


def _decider(args):
    from mfg.serverless.adapters import AutoscalerDecider, PolicyDecider

    if args.policy is not None:
        import mfg_policy

        return PolicyDecider(mfg_policy.load_policy(args.policy), greedy=args.greedy, seed=args.seed)
    from mfg.serverless.autoscalers import ConcurrencyAutoscaler, HorizontalAutoscaler, StaticPolicy
    from mfg.serverless.cluster import ClusterModel

    model = ClusterModel()
    knob = args.autoscaler_target
    autoscaler = {"hpa": lambda: HorizontalAutoscaler(0.7 if knob is None else knob, cpu_steps=model.max_cpu_steps),
                  "kpa": lambda: ConcurrencyAutoscaler(0.7 if knob is None else knob, cpu_steps=model.max_cpu_steps),
                  "static": lambda: StaticPolicy(2 if knob is None else int(knob), model.max_cpu_steps)}[args.autoscaler]()
    return AutoscalerDecider(autoscaler, model, seed=args.seed)


def _platform(args):
    from mfg.serverless.adapters import (DryRunTransport, KnativePlatform, KubernetesPlatform, KubernetesTransport,
                              OpenWhiskPlatform, UrllibTransport)
    from mfg.serverless.adapters.http import basic_auth_header

    if args.platform == "openwhisk":
        if not args.openwhisk_url:
            raise ValueError("--platform openwhisk needs --openwhisk-url")
        auth = os.environ.get("OPENWHISK_AUTH")
        if not auth:
            raise ValueError("set OPENWHISK_AUTH='uuid:key' in the environment (credentials are never "
                             "taken from the command line)")
        transport = UrllibTransport(args.openwhisk_url, {"Authorization": basic_auth_header(auth)}, args.timeout,
                                    not args.insecure, args.ca_file)
    else:
        import importlib.util

        if importlib.util.find_spec("kubernetes") is None:
            raise ValueError(f"--platform {args.platform} needs the kubernetes client: "
                             f"pip install 'mfg-nac[adapters]'") from None
        try:
            transport = KubernetesTransport(timeout=args.timeout, context=args.kube_context)
        except Exception as err:                      # no kubeconfig, bad context: say which
            raise ValueError(f"no Kubernetes credentials: {err}") from None
    if args.dry_run:
        transport = DryRunTransport(transport)
    if args.platform == "kubernetes":
        return KubernetesPlatform(transport, args.namespace or "default", retry=_retry(args))
    if args.platform == "knative":
        return KnativePlatform(transport, args.namespace or "default", retry=_retry(args))
    return OpenWhiskPlatform(transport, args.namespace or "_", memory_per_core=args.memory_per_core,
                             retry=_retry(args))


def build_loop(args, log=None):
    """The ``ControlLoop`` that ``args`` (parsed by ``add_arguments``) describe."""
    from mfg.serverless.adapters import Bounds, ControlLoop

    bounds = Bounds(args.min_containers, args.max_containers, args.min_cpu, args.max_cpu, cooldown_s=args.cooldown)
    functions = [f.strip() for f in args.functions.split(",") if f.strip()] if args.functions else None
    return ControlLoop(_source(args), _decider(args), _platform(args), bounds, functions, log=log)


def check_arguments(args) -> None:
    """Ranges of the numeric arguments (``ValueError`` naming the flag and what is allowed)."""
    import math

    def need(ok: bool, flag: str, allowed: str, value) -> None:
        if not ok:
            raise ValueError(f"{flag} must be {allowed}, got {value!r}")

    finite = lambda x: x is not None and math.isfinite(x)          # noqa: E731
    need(finite(args.interval) and args.interval > 0, "--interval", "a number of seconds > 0", args.interval)
    need(finite(args.timeout) and args.timeout > 0, "--timeout", "a number of seconds > 0", args.timeout)
    need(args.iterations is None or args.iterations >= 1, "--iterations", "an integer >= 1", args.iterations)
    need(args.retries >= 1, "--retries", "an integer >= 1", args.retries)
    need(finite(args.cooldown) and args.cooldown >= 0, "--cooldown", "a number of seconds >= 0", args.cooldown)
    need(finite(args.memory_per_core) and args.memory_per_core > 0, "--memory-per-core", "a number of MB > 0",
         args.memory_per_core)
    need(args.min_containers >= 0, "--min-containers", "an integer >= 0", args.min_containers)
    need(args.max_containers >= max(args.min_containers, 1), "--max-containers",
         f"an integer >= max(1, --min-containers) = {max(args.min_containers, 1)}", args.max_containers)
    need(finite(args.min_cpu) and args.min_cpu > 0, "--min-cpu", "a number of cores > 0", args.min_cpu)
    need(finite(args.max_cpu) and args.max_cpu >= args.min_cpu, "--max-cpu",
         f"a number of cores >= --min-cpu = {args.min_cpu}", args.max_cpu)
    need(args.seed >= 0, "--seed", "an integer >= 0", args.seed)
    knob = args.autoscaler_target
    if knob is not None:
        if args.autoscaler is None:
            raise ValueError("--autoscaler-target applies to --autoscaler only, not to --policy")
        allowed = {"hpa": ("a target CPU utilization in (0, 1]", finite(knob) and 0 < knob <= 1),
                   "kpa": ("a target concurrency per container > 0", finite(knob) and knob > 0),
                   "static": ("a whole number of containers >= 1", finite(knob) and knob >= 1 and knob == int(knob))}
        text, ok = allowed[args.autoscaler]
        need(ok, f"--autoscaler-target (for {args.autoscaler})", text, knob)
    if args.observations not in (None, "-"):
        path = args.observations
        if not os.path.isfile(path):
            raise ValueError(f"--observations {path}: no such file" if not os.path.exists(path) else
                             f"--observations {path}: not a file")


def serve(args) -> int:
    """Run the control loop of ``args``; 0 on success.

    A permanent error (401, 403, 404, an unreadable observations file, a bad argument)
    ends it with ``AdapterError`` or ``ValueError`` (the CLI exits non-zero with the
    message); with ``--once`` a round with any failed function returns 1."""
    check_arguments(args)
    log = open(args.log, "a") if args.log else sys.stderr
    try:
        loop = build_loop(args, log)
        if args.once:
            from mfg.serverless.adapters import AdapterError

            try:
                records = loop.step()
            except EOFError:
                raise AdapterError("no observation: the input stream is empty") from None
            failed = [r for r in records if r.get("outcome") in ("error", "observe_error")]
            if failed:
                print(f"mfg serve --once: the round failed for {len(failed)} of {len(records)} record(s); first: "
                      f"{failed[0].get('function', 'observe')}: {failed[0].get('error')}", file=sys.stderr)
                return 1
        else:
            loop.run(args.interval, args.iterations)
    finally:
        if log is not sys.stderr:
            log.close()
    return 0
