"""Loopback HTTP servers that speak the real API paths of Kubernetes, Knative and OpenWhisk.

``FakePlatform`` keeps the objects (Deployments and pods, Knative Services, OpenWhisk
actions), checks every request's method, path, content type, credentials and body shape
(a wrong one is answered 4xx and recorded in ``violations``), applies the patches, and
records every request in ``requests`` and every resulting value in ``history``.

Faults are scripted per request (``Fault``): answer a status (409, 429 with Retry-After,
500, ...) instead of serving, or serve and then stall past the client's timeout.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "test-token-7f3a"
OPENWHISK_AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:s3cr3t-k3y"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


@dataclasses.dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``path`` (a regex) with
    ``status`` (and ``headers``), or, with ``stall``, serve them and then wait that long."""

    method: str
    path: str
    status: int = 0
    headers: dict = dataclasses.field(default_factory=dict)
    times: int = 1
    stall: float = 0.0
    before: object = None          # called before answering (e.g. a concurrent change)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _cpu(obj_container):
    return obj_container["resources"]["requests"]["cpu"]


class FakePlatform:
    def __init__(self):
        self.requests: list[dict] = []
        self.violations: list[str] = []
        self.history: list[tuple] = []
        self.faults: list[Fault] = []
        self.resize_available = True
        self.lock = threading.Lock()
        self.deployments, self.pods, self.services, self.actions = {}, {}, {}, {}
        self._pod_counter = 0
        self.server = None
        self.connections = set()

    # ---------------------------------------------------------------- objects
    def add_deployment(self, name, replicas=1, cpu="250m", namespace="default"):
        self.deployments[(namespace, name)] = {
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": f"example/{name}:1",
                                                           "resources": {"requests": {"cpu": cpu},
                                                                         "limits": {"cpu": cpu}}}]}}}}
        self._sync_pods(namespace, name)

    def _sync_pods(self, namespace, name):
        deployment = self.deployments[(namespace, name)]
        mine = [k for k, p in self.pods.items() if p["metadata"]["labels"]["app"] == name]
        want = deployment["spec"]["replicas"]
        for key in mine[want:]:
            del self.pods[key]
        for _ in range(want - len(mine)):
            self._pod_counter += 1
            pod_name = f"{name}-{self._pod_counter:04d}"
            self.pods[(namespace, pod_name)] = {
                "metadata": {"name": pod_name, "namespace": namespace, "labels": {"app": name}},
                "spec": copy.deepcopy(deployment["spec"]["template"]["spec"])}

    def add_service(self, name, cpu="500m", namespace="default", annotations=None):
        self.services[(namespace, name)] = {
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "100", "generation": 1},
            "spec": {"template": {"metadata": {"annotations": dict(annotations or {})},
                                  "spec": {"containerConcurrency": 0,
                                           "containers": [{"image": f"example/{name}:1",
                                                           "env": [{"name": "MODE", "value": "prod"}],
                                                           "resources": {"requests": {"cpu": cpu, "memory": "256Mi"},
                                                                         "limits": {"cpu": cpu, "memory": "256Mi"}}}]}}}}

    def add_action(self, name, memory=256, concurrency=1, namespace="guest"):
        self.actions[(namespace, name)] = {
            "namespace": namespace, "name": name, "version": "0.0.1",
            "exec": {"kind": "python:3", "binary": False},
            "limits": {"memory": memory, "timeout": 60000, "logs": 10, "concurrency": concurrency}}

    def revisions(self, namespace, name):
        return self.services[(namespace, name)]["metadata"]["generation"]

    # ---------------------------------------------------------------- serving
    def start(self, port=0):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                platform.connections.add(self.connection)

            def finish(self):
                platform.connections.discard(self.connection)
                super().finish()

            def _serve(self):
                platform.handle(self)

            do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self):
        return self.server.server_address[1]

    def stop(self):
        """Go away: stop listening and cut the open (keep-alive) connections."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            for connection in list(self.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.server = None

    def _reply(self, handler, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        try:
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):      # the client timed out and left
            pass

    def handle(self, handler):
        url = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        record = {"method": handler.command, "path": url.path, "query": dict(urllib.parse.parse_qsl(url.query)),
                  "content_type": handler.headers.get("Content-Type"), "body": body,
                  "authorization": handler.headers.get("Authorization")}
        with self.lock:
            self.requests.append(record)
            fault = next((f for f in self.faults if f.times > 0 and f.method == handler.command
                          and re.fullmatch(f.path, url.path)), None)
            if fault is not None:
                fault.times -= 1
                if fault.before is not None:
                    fault.before()
            if fault is not None and fault.status:
                return self._reply(handler, fault.status, {"kind": "Status", "message": "injected fault"},
                                   fault.headers)
            status, answer = self.route(record)
        if fault is not None and fault.stall:
            time.sleep(fault.stall)
        self._reply(handler, status, answer)

    def violation(self, record, why, status=422):
        self.violations.append(f"{record['method']} {record['path']}: {why}")
        return status, {"kind": "Status", "message": why}

    def route(self, r):
        m, path, body = r["method"], r["path"], r["body"]
        k8s = re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)(/scale)?", path)
        pods = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)
        resize = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/resize", path)
        knative = re.fullmatch(r"/apis/serving.knative.dev/v1/namespaces/([^/]+)/services/([^/]+)", path)
        action = re.fullmatch(r"/api/v1/namespaces/([^/]+)/actions/([^/]+)", path)
        if k8s or pods or resize or knative:
            if r["authorization"] != f"Bearer {TOKEN}":
                return self.violation(r, "missing or wrong bearer token", 401)
        if k8s:
            key = (k8s.group(1), k8s.group(2))
            if key not in self.deployments:
                return 404, {"kind": "Status", "reason": "NotFound", "details": {"name": key[1], "kind": "deployments"}}
            deployment = self.deployments[key]
            if m == "GET" and not k8s.group(3):
                return 200, deployment
            if m == "PATCH" and k8s.group(3):
                if r["content_type"] != MERGE:
                    return self.violation(r, f"scale patch content type {r['content_type']}", 415)
                if not (isinstance(body, dict) and set(body) == {"spec"} and set(body["spec"]) == {"replicas"}
                        and isinstance(body["spec"]["replicas"], int)):
                    return self.violation(r, f"scale body {body}")
                deployment["spec"]["replicas"] = body["spec"]["replicas"]
                self._sync_pods(*key)
                self.history.append(("replicas", key[1], body["spec"]["replicas"]))
                return 200, {"kind": "Scale", "spec": {"replicas": body["spec"]["replicas"]}}
            if m == "PATCH":
                if r["content_type"] != STRATEGIC:
                    return self.violation(r, f"deployment patch content type {r['content_type']}", 415)
                try:
                    (container,) = body["spec"]["template"]["spec"]["containers"]
                    cpu = container["resources"]["requests"]["cpu"]
                    assert container["resources"]["limits"]["cpu"] == cpu
                except (KeyError, TypeError, ValueError, AssertionError):
                    return self.violation(r, f"template patch body {body}")
                for c in deployment["spec"]["template"]["spec"]["containers"]:
                    if c["name"] == container["name"]:
                        c["resources"] = merge_patch(c["resources"], container["resources"])
                for (ns, _), pod in list(self.pods.items()):       # the rollout replaces every pod
                    if pod["metadata"]["labels"]["app"] == key[1]:
                        pod["spec"] = copy.deepcopy(deployment["spec"]["template"]["spec"])
                self.history.append(("template_cpu", key[1], cpu))
                return 200, deployment
        if pods and m == "GET":
            selector = dict(p.split("=") for p in r["query"].get("labelSelector", "").split(",") if p)
            items = [p for (ns, _), p in self.pods.items() if ns == pods.group(1)
                     and all(p["metadata"]["labels"].get(a) == b for a, b in selector.items())]
            return 200, {"kind": "PodList", "items": items}
        if resize and m == "PATCH":
            if not self.resize_available:
                return 404, {"kind": "Status", "reason": "NotFound", "message": "the server could not find the requested resource"}
            key = (resize.group(1), resize.group(2))
            if key not in self.pods:
                return 404, {"kind": "Status", "reason": "NotFound", "details": {"name": key[1], "kind": "pods"}}
            if r["content_type"] != STRATEGIC:
                return self.violation(r, f"resize content type {r['content_type']}", 415)
            try:
                (container,) = body["spec"]["containers"]
                assert set(body) == {"spec"} and set(body["spec"]) == {"containers"}
                cpu = container["resources"]["requests"]["cpu"]
                assert container["resources"]["limits"]["cpu"] == cpu and re.fullmatch(r"\d+m", cpu)
            except (KeyError, TypeError, ValueError, AssertionError):
                return self.violation(r, f"resize body {body}")
            for c in self.pods[key]["spec"]["containers"]:
                if c["name"] == container["name"]:
                    c["resources"] = merge_patch(c["resources"], container["resources"])
                    break
            else:
                return self.violation(r, f"no container {container['name']}")
            self.history.append(("pod_cpu", key[1], cpu))
            return 200, self.pods[key]
        if knative:
            key = (knative.group(1), knative.group(2))
            if key not in self.services:
                return 404, {"kind": "Status", "reason": "NotFound"}
            service = self.services[key]
            if m == "GET":
                return 200, service
            if m == "PATCH":
                if r["content_type"] != MERGE:
                    return self.violation(r, f"knative patch content type {r['content_type']}", 415)
                if not isinstance(body, dict) or set(body) - {"metadata", "spec"}:
                    return self.violation(r, f"knative body {body}")
                version = (body.get("metadata") or {}).get("resourceVersion")
                if version is not None and version != service["metadata"]["resourceVersion"]:
                    return 409, {"kind": "Status", "reason": "Conflict", "message": "the object has been modified"}
                patched = merge_patch(service, body)
                for container in patched["spec"]["template"]["spec"]["containers"]:
                    if "image" not in container:
                        return self.violation(r, "a container lost its image (list replaced by a partial one)")
                patched["metadata"]["resourceVersion"] = str(int(service["metadata"]["resourceVersion"]) + 1)
                patched["metadata"]["generation"] = service["metadata"]["generation"] + 1
                self.services[key] = patched
                annotations = patched["spec"]["template"]["metadata"]["annotations"]
                self.history.append(("knative", key[1], annotations.get("autoscaling.knative.dev/min-scale"),
                                     annotations.get("autoscaling.knative.dev/max-scale"),
                                     _cpu(patched["spec"]["template"]["spec"]["containers"][0])))
                return 200, patched
        if action:
            expected = "Basic " + base64.b64encode(OPENWHISK_AUTH.encode()).decode()
            if r["authorization"] != expected:
                return 401, {"error": "The supplied authentication is invalid"}
            key = (action.group(1), action.group(2))
            if key not in self.actions:
                return 404, {"error": "The requested resource does not exist."}
            if m == "GET":
                return 200, self.actions[key]
            if m == "PUT":
                if r["query"].get("overwrite") != "true":
                    return 409, {"error": "resource already exists"}
                if r["content_type"] != "application/json":
                    return self.violation(r, f"openwhisk content type {r['content_type']}", 415)
                if not (isinstance(body, dict) and set(body) == {"limits"} and isinstance(body["limits"], dict)
                        and isinstance(body["limits"].get("memory"), int)):
                    return self.violation(r, f"openwhisk body {body}", 400)
                self.actions[key]["limits"] = dict(body["limits"])
                self.actions[key]["version"] = "0.0.%d" % (int(self.actions[key]["version"].split(".")[-1]) + 1)
                self.history.append(("openwhisk", key[1], body["limits"]["memory"], body["limits"].get("concurrency")))
                return 200, self.actions[key]
        return self.violation(r, "no such API path or method", 404)
