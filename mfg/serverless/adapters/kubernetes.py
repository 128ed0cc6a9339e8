"""Kubernetes: replicas through the Deployment scale subresource, CPU through in-place pod resize.

Requests (``{ns}`` the namespace, ``{name}`` the Deployment, ``{c}`` its container):

  read     GET   /apis/apps/v1/namespaces/{ns}/deployments/{name}
           GET   /api/v1/namespaces/{ns}/pods?labelSelector=<the Deployment's matchLabels>
  replicas PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale
                 application/merge-patch+json  {"spec": {"replicas": N}}
  CPU      PATCH /api/v1/namespaces/{ns}/pods/{pod}/resize            (KEP-1287, 1.33+)
                 application/strategic-merge-patch+json
                 {"spec": {"containers": [{"name": c, "resources":
                   {"requests": {"cpu": "250m"}, "limits": {"cpu": "250m"}}}]}}
           where the resize subresource is missing (404: a cluster before 1.33), the
           Deployment's template instead (this rolls the pods):
           PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}
                 application/strategic-merge-patch+json
                 {"spec": {"template": {"spec": {"containers": [{"name": c, "resources": ...}]}}}}

Resize changes running pods only; pods that a scale-up creates start from the template's
CPU, so after a scale the pods are listed again and the new ones resized too.  Do not run a HorizontalPodAutoscaler on the same
Deployment: two controllers would fight over ``replicas``.
"""

from __future__ import annotations

from mfg.serverless.adapters.core import AdapterError, Allocation, Target, format_cpu, parse_cpu
from mfg.serverless.adapters.http import MERGE_PATCH, STRATEGIC_MERGE_PATCH, Request, Response, Transport
from mfg.serverless.adapters.platform import HttpPlatform

__all__ = ["KubernetesPlatform"]


def _container(spec: dict, name: str | None, where: str) -> dict:
    containers = spec.get("containers") or []
    if not containers:
        raise AdapterError(f"{where}: no containers")
    if name is None:
        return containers[0]
    for container in containers:
        if container.get("name") == name:
            return container
    raise AdapterError(f"{where}: no container named {name!r} (has {[c.get('name') for c in containers]})")


def _cpu_of(container: dict, where: str) -> float:
    resources = container.get("resources") or {}
    cpu = (resources.get("requests") or {}).get("cpu") or (resources.get("limits") or {}).get("cpu")
    if cpu is None:
        raise AdapterError(f"{where}: container {container.get('name')!r} has no CPU request or limit; "
                           f"give it one so that the autoscaler knows its size")
    return parse_cpu(cpu)


class KubernetesPlatform(HttpPlatform):
    """Deployments as functions (see the module docstring for the requests).

    Args:
      transport: as for ``HttpPlatform`` (so are ``retry`` and ``conflict_attempts``).
      namespace: the Deployments' namespace.
      container: the container whose CPU is resized (default: the first).
    """

    name = "kubernetes"

    def __init__(self, transport: Transport, namespace: str = "default", container: str | None = None, **kwargs):
        super().__init__(transport, namespace, **kwargs)
        self.container = container
        self.resize_supported = True

    def _deployment_path(self, function: str) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{function}"

    def object_request(self, function: str) -> Request:
        return Request("GET", self._deployment_path(function))

    def fetch(self, function: str) -> dict:
        """The Deployment, with its running pods under ``"pods"``."""
        deployment = super().fetch(function)
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            raise AdapterError(f"deployment {function}: no spec.selector.matchLabels to find its pods")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = self.send(Request("GET", f"/api/v1/namespaces/{self.namespace}/pods",
                                 query=(("labelSelector", selector),)), accept=()).body
        running = [p for p in (pods or {}).get("items", []) if not (p.get("metadata") or {}).get("deletionTimestamp")]
        return dict(deployment, pods=running)

    def allocation(self, obj: dict, function: str) -> Allocation:
        where = f"deployment {function}"
        template = _container(obj["spec"]["template"]["spec"], self.container, where)
        cpus = [_cpu_of(_container(p["spec"], self.container, f"pod {p['metadata']['name']}"), where)
                for p in obj["pods"]]
        cpu = sum(cpus) / len(cpus) if cpus else _cpu_of(template, where)
        return Allocation(int(obj["spec"].get("replicas", 1)), cpu)

    def _resources(self, container_name: str, cpu: float) -> dict:
        quantity = format_cpu(cpu)
        return {"name": container_name, "resources": {"requests": {"cpu": quantity}, "limits": {"cpu": quantity}}}

    def plan(self, obj: dict, target: Target) -> list[Request]:
        function, requests = target.name, []
        if int(obj["spec"].get("replicas", 1)) != target.containers:
            requests.append(Request("PATCH", self._deployment_path(function) + "/scale",
                                    {"spec": {"replicas": target.containers}}, MERGE_PATCH))
        where = f"deployment {function}"
        template = _container(obj["spec"]["template"]["spec"], self.container, where)
        quantity = format_cpu(target.cpu)
        stale = [p for p in obj["pods"]
                 if format_cpu(_cpu_of(_container(p["spec"], self.container, where), where)) != quantity]
        if self.resize_supported:
            requests += [Request("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{p['metadata']['name']}/resize",
                                 {"spec": {"containers": [self._resources(template["name"], target.cpu)]}},
                                 STRATEGIC_MERGE_PATCH) for p in stale]
        elif stale or format_cpu(_cpu_of(template, where)) != quantity:
            requests.append(self._template_patch(function, template["name"], target.cpu))
        return requests

    def _template_patch(self, function: str, container: str, cpu: float) -> Request:
        return Request("PATCH", self._deployment_path(function),
                       {"spec": {"template": {"spec": {"containers": [self._resources(container, cpu)]}}}},
                       STRATEGIC_MERGE_PATCH)

    def execute(self, request: Request, target: Target):
        if not request.path.endswith("/resize"):
            return super().execute(request, target)
        if not self.resize_supported:                     # an earlier pod fell back: the template is patched
            return Response(200), []
        response = self.send(request, accept=(409, 404))
        if response.status != 404:
            return response, [request]
        pod = request.path.split("/")[-2]
        if isinstance(response.body, dict) and (response.body.get("details") or {}).get("name") == pod:
            return Response(200), [request]               # the pod went away meanwhile: nothing to resize
        # No resize subresource (a cluster before 1.33): patch the template instead.
        self.resize_supported = False
        fallback = self._template_patch(target.name, request.body["spec"]["containers"][0]["name"], target.cpu)
        return self.send(fallback), [request, fallback]

    def apply(self, target: Target) -> list[Request]:
        """Scale and resize; pods the scale-up created start from the template's CPU, so
        they are listed again and resized too."""
        sent = super().apply(target)
        if any(r.path.endswith("/scale") for r in sent):
            done = {r.path for r in sent}
            for request in self.plan(self.fetch(target.name), target):
                if request.path.endswith("/resize") and request.path not in done:
                    sent += self.execute(request, target)[1]
        return sent
