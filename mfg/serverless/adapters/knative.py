"""Knative Serving: the Service's autoscaling annotations and container CPU, by merge patch.

Requests (``{ns}`` the namespace, ``{name}`` the Service):

  read   GET   /apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}
  write  PATCH /apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}
               application/merge-patch+json
               {"metadata": {"resourceVersion": RV},
                "spec": {"template": {
                  "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "N",
                                               "autoscaling.knative.dev/max-scale": "N",
                                               "autoscaling.knative.dev/target": "T"}},
                  "spec": {"containers": [... the containers, the first with
                           "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "250m"}}]}}}}

An exact replica count under Knative's KPA is min-scale = max-scale = N; ``target`` (the
soft concurrency per replica) is written only when the decider gives one.  A merge patch
replaces a list whole, so the containers are sent complete (as read) with the CPU
changed, and the read's ``resourceVersion`` makes a concurrent change answer 409, after
which the Service is read again.  Each change makes a new Revision, so nothing is sent
when the Service already matches the target.
"""

from __future__ import annotations

import copy

from mfg.serverless.adapters.core import AdapterError, Allocation, Target, format_cpu, parse_cpu
from mfg.serverless.adapters.http import MERGE_PATCH, Request
from mfg.serverless.adapters.platform import HttpPlatform

__all__ = ["KnativePlatform", "MIN_SCALE", "MAX_SCALE", "TARGET"]

MIN_SCALE = "autoscaling.knative.dev/min-scale"
MAX_SCALE = "autoscaling.knative.dev/max-scale"
TARGET = "autoscaling.knative.dev/target"


def _template(obj: dict, function: str) -> tuple[dict, list[dict]]:
    template = (obj.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        raise AdapterError(f"knative service {function}: spec.template.spec.containers is empty")
    return (template.get("metadata") or {}).get("annotations") or {}, containers


def _target_text(value: float) -> str:
    return f"{value:g}"


class KnativePlatform(HttpPlatform):
    """Knative Services as functions (see the module docstring for the requests)."""

    name = "knative"

    def _path(self, function: str) -> str:
        return f"/apis/serving.knative.dev/v1/namespaces/{self.namespace}/services/{function}"

    def object_request(self, function: str) -> Request:
        return Request("GET", self._path(function))

    def allocation(self, obj: dict, function: str) -> Allocation:
        annotations, containers = _template(obj, function)
        resources = containers[0].get("resources") or {}
        cpu = (resources.get("requests") or {}).get("cpu") or (resources.get("limits") or {}).get("cpu")
        if cpu is None:
            raise AdapterError(f"knative service {function}: the first container has no CPU request or limit")
        try:
            containers_now = int(annotations.get(MIN_SCALE, 1)) or 1
            target = float(annotations[TARGET]) if TARGET in annotations else None
        except ValueError:
            raise AdapterError(f"knative service {function}: min-scale / target annotations are not numbers") from None
        return Allocation(containers_now, parse_cpu(cpu), target)

    def plan(self, obj: dict, target: Target) -> list[Request]:
        annotations, containers = _template(obj, target.name)
        wanted = {MIN_SCALE: str(target.containers), MAX_SCALE: str(target.containers)}
        if target.concurrency is not None:
            wanted[TARGET] = _target_text(target.concurrency)
        changed = {k: v for k, v in wanted.items() if annotations.get(k) != v}
        template: dict = {}
        if changed:
            template["metadata"] = {"annotations": changed}
        quantity = format_cpu(target.cpu)
        first = containers[0].get("resources") or {}
        if (first.get("requests") or {}).get("cpu") != quantity or (first.get("limits") or {}).get("cpu") != quantity:
            updated = copy.deepcopy(containers)
            resources = updated[0].setdefault("resources", {})
            resources.setdefault("requests", {})["cpu"] = quantity
            resources.setdefault("limits", {})["cpu"] = quantity
            template["spec"] = {"containers": updated}
        if not template:
            return []
        body = {"spec": {"template": template}}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            body["metadata"] = {"resourceVersion": version}
        return [Request("PATCH", self._path(target.name), body, MERGE_PATCH)]
