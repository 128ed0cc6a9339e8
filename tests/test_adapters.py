"""Cluster adapters against loopback servers that serve the real Kubernetes, Knative and
OpenWhisk API paths: the exact requests, retries and their limits, conflicts, bounds, rate
limits, dry-run, and a server that goes away in the middle of a control loop."""

import io
import json
import re

import pytest
from fake_platforms import MERGE, OPENWHISK_AUTH, STRATEGIC, TOKEN, Fault

from mfg.serverless.adapters import (AdapterError, Bounds, ControlLoop, DryRunTransport, FunctionMetrics, JsonSource,
                          KnativePlatform, KubernetesPlatform, OpenWhiskPlatform, RetryPolicy, Target, UrllibTransport)
from mfg.serverless.adapters.http import KubernetesTransport, Request, basic_auth_header, send


class RecordedSleep:
    """Stands in for time.sleep: records the waits, returns at once."""

    def __init__(self):
        self.waits = []

    def __call__(self, seconds):
        self.waits.append(seconds)


def kubernetes_transport(url, timeout=2.0):
    from kubernetes import client

    configuration = client.Configuration(host=url, api_key={"authorization": TOKEN},
                                         api_key_prefix={"authorization": "Bearer"})
    configuration.retries = False
    return KubernetesTransport(client.ApiClient(configuration), timeout=timeout)


def openwhisk_transport(url, timeout=2.0, auth=OPENWHISK_AUTH):
    return UrllibTransport(url, {"Authorization": basic_auth_header(auth)}, timeout=timeout)


def make(kind, fake, sleep=None, timeout=2.0, dry_run=None):
    """A platform adapter of ``kind`` on ``fake``, with one function 'fn' deployed there."""
    retry = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=5.0, jitter=0.0, sleep=sleep or RecordedSleep())
    if kind == "kubernetes":
        fake.add_deployment("fn", replicas=1, cpu="250m")
        transport = kubernetes_transport(fake.url, timeout)
        transport = DryRunTransport(transport, dry_run) if dry_run else transport
        return KubernetesPlatform(transport, "default", retry=retry)
    if kind == "knative":
        fake.add_service("fn", cpu="500m")
        transport = kubernetes_transport(fake.url, timeout)
        transport = DryRunTransport(transport, dry_run) if dry_run else transport
        return KnativePlatform(transport, "default", retry=retry)
    fake.add_action("fn", memory=256, namespace="guest")
    transport = openwhisk_transport(fake.url, timeout)
    transport = DryRunTransport(transport, dry_run) if dry_run else transport
    return OpenWhiskPlatform(transport, "guest", retry=retry)


def state_of(kind, fake):
    """(containers, cpu cores) as the fake platform holds them now."""
    if kind == "kubernetes":
        d = fake.deployments[("default", "fn")]
        pods = [p for p in fake.pods.values() if p["metadata"]["labels"]["app"] == "fn"]
        cpus = {p["spec"]["containers"][0]["resources"]["requests"]["cpu"] for p in pods}
        assert len(cpus) == 1, f"pods disagree on their CPU: {cpus}"
        return d["spec"]["replicas"], float(cpus.pop()[:-1]) / 1000
    if kind == "knative":
        t = fake.services[("default", "fn")]["spec"]["template"]
        return (int(t["metadata"]["annotations"].get("autoscaling.knative.dev/min-scale", 1)),
                float(t["spec"]["containers"][0]["resources"]["requests"]["cpu"][:-1]) / 1000)
    limits = fake.actions[("guest", "fn")]["limits"]
    return 1, limits["memory"] / 1024


MUTATION = {"kubernetes": ("PATCH", r".*/scale"), "knative": ("PATCH", r"/apis/serving.*"),
            "openwhisk": ("PUT", r".*/actions/fn")}
PLATFORMS = ["kubernetes", "knative", "openwhisk"]


def expected_state(kind, target):
    return (1 if kind == "openwhisk" else target.containers), target.cpu


# ------------------------------------------------------------------ the requests themselves

def test_kubernetes_scales_through_the_scale_subresource_and_resizes_pods_in_place(fake):
    platform = make("kubernetes", fake)
    sent = platform.apply(Target("fn", containers=3, cpu=0.5))
    assert [(r.method, r.path) for r in sent][0] == ("PATCH", "/apis/apps/v1/namespaces/default/deployments/fn/scale")
    assert sent[0].body == {"spec": {"replicas": 3}} and sent[0].content_type == MERGE
    # Every pod is resized in place, the two the scale-up created included.
    resizes = [r for r in fake.requests if r["path"].endswith("/resize")]
    assert resizes and all(r["content_type"] == STRATEGIC and r["method"] == "PATCH" for r in resizes)
    assert resizes[0]["body"] == {"spec": {"containers": [{"name": "main", "resources": {
        "requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}}]}}
    assert len(resizes) == 3 and len({r["path"] for r in resizes}) == 3
    assert state_of("kubernetes", fake) == (3, 0.5)
    assert not fake.violations
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)


def test_kubernetes_falls_back_to_a_template_patch_without_the_resize_subresource(fake):
    platform = make("kubernetes", fake)
    fake.resize_available = False
    platform.apply(Target("fn", containers=2, cpu=0.75))
    assert ("template_cpu", "fn", "750m") in fake.history and state_of("kubernetes", fake) == (2, 0.75)
    assert platform.resize_supported is False and not fake.violations


def test_knative_merge_patch_keeps_the_containers_whole_and_pins_the_scale(fake):
    platform = make("knative", fake)
    platform.apply(Target("fn", containers=4, cpu=0.25, concurrency=10))
    (patch,) = [r for r in fake.requests if r["method"] == "PATCH"]
    assert patch["content_type"] == MERGE and patch["body"]["metadata"] == {"resourceVersion": "100"}
    template = patch["body"]["spec"]["template"]
    assert template["metadata"]["annotations"] == {"autoscaling.knative.dev/min-scale": "4",
                                                   "autoscaling.knative.dev/max-scale": "4",
                                                   "autoscaling.knative.dev/target": "10"}
    (container,) = template["spec"]["containers"]
    assert container["image"] == "example/fn:1" and container["env"] == [{"name": "MODE", "value": "prod"}]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "250m", "memory": "256Mi"}}
    assert state_of("knative", fake) == (4, 0.25) and fake.revisions("default", "fn") == 2
    # The same target again: no PATCH, so no new Revision.
    assert platform.apply(Target("fn", containers=4, cpu=0.25, concurrency=10)) == []
    assert fake.revisions("default", "fn") == 2 and not fake.violations


def test_openwhisk_puts_the_limits_with_basic_auth_and_keeps_the_others(fake):
    platform = make("openwhisk", fake)
    platform.apply(Target("fn", containers=3, cpu=0.5, concurrency=4))
    (put,) = [r for r in fake.requests if r["method"] == "PUT"]
    assert put["path"] == "/api/v1/namespaces/guest/actions/fn" and put["query"] == {"overwrite": "true"}
    assert put["content_type"] == "application/json"
    assert put["body"] == {"limits": {"memory": 512, "timeout": 60000, "logs": 10, "concurrency": 4}}
    assert put["authorization"].startswith("Basic ") and not fake.violations
    assert platform.read("fn").cpu == 0.5


def test_wrong_credentials_are_refused_once_not_retried(fake):
    sleep = RecordedSleep()
    make("openwhisk", fake, sleep=sleep)
    platform = OpenWhiskPlatform(openwhisk_transport(fake.url, auth="guest:wrong"), "guest",
                                 retry=RetryPolicy(sleep=sleep))
    with pytest.raises(AdapterError, match="401"):
        platform.apply(Target("fn", 1, 0.5))
    assert len(fake.requests) == 1 and sleep.waits == []


# ------------------------------------------------------------------ faults, on every platform

@pytest.mark.parametrize("kind", PLATFORMS)
def test_429_waits_as_long_as_retry_after_says(kind, fake):
    sleep = RecordedSleep()
    platform = make(kind, fake, sleep=sleep)
    method, path = MUTATION[kind]
    fake.faults.append(Fault(method, path, status=429, headers={"Retry-After": "2"}))
    target = Target("fn", 2, 0.375, 3)
    platform.apply(target)
    assert sleep.waits == [2.0]
    assert state_of(kind, fake) == expected_state(kind, target) and not fake.violations


@pytest.mark.parametrize("kind", PLATFORMS)
def test_500_backs_off_exponentially_and_gives_up_after_the_attempts(kind, fake):
    sleep = RecordedSleep()
    platform = make(kind, fake, sleep=sleep)
    method, path = MUTATION[kind]
    fake.faults.append(Fault(method, path, status=503, times=2))
    target = Target("fn", 2, 0.375, 3)
    platform.apply(target)
    assert sleep.waits == [0.5, 1.0] and state_of(kind, fake) == expected_state(kind, target)
    fake.faults.append(Fault(method, path, status=500, times=10))
    with pytest.raises(AdapterError, match="gave up after 4 attempts"):
        platform.apply(Target("fn", 3, 0.5, 3))
    assert state_of(kind, fake) == expected_state(kind, target)       # nothing half-applied


@pytest.mark.parametrize("kind", PLATFORMS)
def test_a_timeout_is_retried_and_the_repeat_changes_nothing(kind, fake):
    platform = make(kind, fake, timeout=0.3)
    method, path = MUTATION[kind]
    # The server applies the change, then answers too late: the client retries it.
    fake.faults.append(Fault(method, path, stall=1.0))
    target = Target("fn", 3, 0.625, 2)
    platform.apply(target)
    mutations = [r for r in fake.requests if r["method"] == method and re.fullmatch(path, r["path"])]
    assert len(mutations) >= 2                                        # sent twice ...
    assert state_of(kind, fake) == expected_state(kind, target)       # ... applied as once
    assert not fake.violations


@pytest.mark.parametrize("kind", PLATFORMS)
def test_409_rereads_then_reapplies(kind, fake):
    platform = make(kind, fake)
    method, path = MUTATION[kind]

    def someone_else_changes_it():
        if kind == "knative":
            fake.services[("default", "fn")]["metadata"]["resourceVersion"] = "555"
        elif kind == "kubernetes":
            fake.deployments[("default", "fn")]["spec"]["replicas"] = 5
        else:
            fake.actions[("guest", "fn")]["limits"]["timeout"] = 30000

    fake.faults.append(Fault(method, path, status=409, before=someone_else_changes_it))
    target = Target("fn", 2, 0.5, 2)
    platform.apply(target)
    objects = [r["method"] for r in fake.requests if "pods" not in r["path"]]
    assert objects[:4] == ["GET", method, "GET", method]              # read, conflict, read again, apply
    assert state_of(kind, fake) == expected_state(kind, target) and not fake.violations
    if kind == "openwhisk":                                           # the other writer's change survives
        assert fake.actions[("guest", "fn")]["limits"]["timeout"] == 30000


def test_other_4xx_errors_are_not_retried():
    calls = []

    def transport(request):
        calls.append(request)
        from mfg.serverless.adapters.http import Response
        return Response(422, {"message": "spec.replicas: Invalid value"})

    with pytest.raises(AdapterError, match="422.*Invalid value.*not retried"):
        send(transport, Request("PATCH", "/x", {"a": 1}), RetryPolicy(sleep=RecordedSleep()))
    assert len(calls) == 1


# ------------------------------------------------------------------ the loop: bounds, rate limit, outages

class FixedDecider:
    """Decides the same (possibly unsafe) targets every time."""

    def __init__(self, targets):
        self.targets = targets

    def decide(self, metrics, current):
        return [self.targets[m.name] for m in metrics]


def observations_file(tmp_path, names=("fn",)):
    path = tmp_path / "observations.json"
    path.write_text(json.dumps({"functions": [{"name": n, "request_rate": 3.0, "latency_p99": 0.2}
                                              for n in names]}))
    return path


@pytest.mark.parametrize("kind", PLATFORMS)
def test_nothing_outside_the_bounds_reaches_the_platform(kind, fake, tmp_path):
    platform = make(kind, fake)
    bounds = Bounds(min_containers=1, max_containers=4, min_cpu=0.25, max_cpu=0.75, min_concurrency=1,
                    max_concurrency=8)
    log = io.StringIO()
    for wild in (Target("fn", 50, 4.0, 500), Target("fn", 0, 0.001, 0.01)):
        ControlLoop(JsonSource(observations_file(tmp_path)), FixedDecider({"fn": wild}), platform, bounds,
                    log=log).step()
        containers, cpu = state_of(kind, fake)
        assert 1 <= containers <= 4 and 0.25 <= cpu <= 0.75
    for entry in fake.history:
        numbers = [v for v in entry[2:] if v is not None]
        for v in numbers:
            value = float(v[:-1]) / 1000 if isinstance(v, str) and v.endswith("m") else float(v)
            assert value <= 768 if kind == "openwhisk" else value <= 4, entry
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    assert records[0]["decided"]["containers"] == 50 and records[0]["target"]["containers"] == 4


def test_cooldown_rate_limits_each_function(fake, tmp_path):
    platform = make("kubernetes", fake)
    now = [0.0]
    decider = FixedDecider({"fn": Target("fn", 2, 0.25)})
    loop = ControlLoop(JsonSource(observations_file(tmp_path)), decider, platform, Bounds(cooldown_s=60),
                       log=io.StringIO(), clock=lambda: now[0])
    assert loop.step()[0]["outcome"] == "applied"
    decider.targets["fn"] = Target("fn", 3, 0.25)
    now[0] = 30.0
    assert loop.step()[0]["outcome"] == "rate_limited" and state_of("kubernetes", fake)[0] == 2
    now[0] = 61.0
    assert loop.step()[0]["outcome"] == "applied" and state_of("kubernetes", fake)[0] == 3


@pytest.mark.parametrize("kind", PLATFORMS)
def test_a_platform_that_goes_away_mid_loop_is_logged_and_the_loop_resumes_when_it_returns(kind, fake, tmp_path):
    platform = make(kind, fake, timeout=0.5)
    {"kubernetes": lambda: fake.add_deployment("other"), "knative": lambda: fake.add_service("other"),
     "openwhisk": lambda: fake.add_action("other", namespace="guest")}[kind]()
    decider = FixedDecider({"fn": Target("fn", 2, 0.25, 2), "other": Target("other", 2, 0.25, 2)})
    log = io.StringIO()
    loop = ControlLoop(JsonSource(observations_file(tmp_path, ("fn", "other"))), decider, platform, log=log)
    assert [r["outcome"] for r in loop.step()] == ["applied", "applied"]
    port = fake.port
    fake.stop()                                                       # the API server goes away
    target = Target("fn", 3, 0.5, 3)
    decider.targets = {"fn": target, "other": Target("other", 3, 0.5, 3)}
    outcomes = loop.step()
    assert [r["outcome"] for r in outcomes] == ["error", "error"]
    assert all("read: " in r["error"] and "gave up after 4 attempts" in r["error"] for r in outcomes)
    fake.start(port)                                                  # ... and comes back
    assert [r["outcome"] for r in loop.step()] == ["applied", "applied"]
    assert state_of(kind, fake) == expected_state(kind, target) and not fake.violations
    lines = log.getvalue().splitlines()
    assert len(lines) == 6
    for secret in (TOKEN, OPENWHISK_AUTH, basic_auth_header(OPENWHISK_AUTH)):
        assert secret not in log.getvalue()


@pytest.mark.parametrize("kind", PLATFORMS)
def test_dry_run_prints_the_exact_requests_and_sends_only_reads(kind, fake, tmp_path):
    out = io.StringIO()
    platform = make(kind, fake, dry_run=out)
    before = state_of(kind, fake)
    log = io.StringIO()
    ControlLoop(JsonSource(observations_file(tmp_path)), FixedDecider({"fn": Target("fn", 3, 0.75, 5)}), platform,
                log=log).step()
    assert all(r["method"] == "GET" for r in fake.requests) and state_of(kind, fake) == before
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines and all(line["dry_run"] and {"method", "path", "body"} <= set(line) for line in lines)
    method, path = MUTATION[kind]
    assert any(line["method"] == method and re.fullmatch(path, line["path"].split("?")[0])
               for line in lines)
    for secret in (TOKEN, OPENWHISK_AUTH, basic_auth_header(OPENWHISK_AUTH)):
        assert secret not in out.getvalue() and secret not in log.getvalue()


# ------------------------------------------------------------------ sources

def test_json_source_reads_a_file_and_names_what_is_wrong(tmp_path):
    path = tmp_path / "obs.json"
    path.write_text(json.dumps([{"name": "a", "request_rate": 2, "cpu_usage": 0.5}]))
    assert JsonSource(path).observe() == [FunctionMetrics("a", 2.0, cpu_usage=0.5)]
    path.write_text(json.dumps({"functions": [{"name": "a", "request_rate": 2, "rps": 3}]}))
    with pytest.raises(AdapterError, match=r"unknown field\(s\) \['rps'\]; allowed"):
        JsonSource(path).observe()
    path.write_text(json.dumps({"functions": [{"name": "a", "request_rate": -1}]}))
    with pytest.raises(AdapterError, match="request_rate must be a finite number >= 0"):
        JsonSource(path).observe()
    path.write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        JsonSource(path).observe()


def test_json_source_reads_one_document_per_line_from_a_stream():
    stream = io.StringIO('{"functions": [{"name": "a", "request_rate": 1}]}\n[{"name": "a", "request_rate": 2}]\n')
    source = JsonSource("-", stream=stream)
    assert source.observe()[0].request_rate == 1.0 and source.observe()[0].request_rate == 2.0
    with pytest.raises(EOFError):
        source.observe()


def test_bounds_reject_impossible_limits():
    with pytest.raises(ValueError, match="min_containers <= max_containers"):
        Bounds(min_containers=5, max_containers=2)
    with pytest.raises(ValueError, match="0 < min_cpu <= max_cpu"):
        Bounds(min_cpu=0)
