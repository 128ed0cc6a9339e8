"""Apache OpenWhisk: the action's limits, by PUT with HTTP basic auth.

Requests (``{ns}`` the namespace, ``_`` for the user's default, ``{name}`` the action):

  read   GET /api/v1/namespaces/{ns}/actions/{name}
  write  PUT /api/v1/namespaces/{ns}/actions/{name}?overwrite=true
             application/json  {"limits": {... as read, with "memory": MB, "concurrency": K}}

Stock OpenWhisk gives a container CPU shares in proportion to its memory limit, so a
CPU target of c cores is written as ``memory = c * memory_per_core`` MB (rounded, within
OpenWhisk's default 128..2048 MB); a concurrency target becomes the action's
intra-container ``concurrency`` (an integer >= 1).  The container count is emergent in
OpenWhisk; where the scheduler has an ``instances`` limit (``instances_limit=True``) the
target's containers are written there.  The limits read are sent back whole (the
controller keeps omitted top-level fields, not omitted limits).
"""

from __future__ import annotations

from mfg.serverless.adapters.core import AdapterError, Allocation, Target
from mfg.serverless.adapters.http import JSON, Request, Transport
from mfg.serverless.adapters.platform import HttpPlatform

__all__ = ["OpenWhiskPlatform"]


class OpenWhiskPlatform(HttpPlatform):
    """OpenWhisk actions as functions (see the module docstring for the requests).

    Args:
      memory_per_core: MB of memory limit per core of CPU target (default 1024).
      memory_range: OpenWhisk's allowed memory limits in MB.
      instances_limit: write the container count to ``limits.instances``.
      transport: as for ``HttpPlatform`` (so are ``retry`` and ``conflict_attempts``).
      namespace: the actions' namespace (default ``_``, the user's own).
    """

    name = "openwhisk"

    def __init__(self, transport: Transport, namespace: str = "_", memory_per_core: float = 1024.0,
                 memory_range: tuple[int, int] = (128, 2048), instances_limit: bool = False, **kwargs):
        super().__init__(transport, namespace, **kwargs)
        if memory_per_core <= 0:
            raise ValueError(f"memory_per_core must be > 0 MB, got {memory_per_core}")
        self.memory_per_core = memory_per_core
        self.memory_range = memory_range
        self.instances_limit = instances_limit

    def _path(self, function: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/actions/{function}"

    def object_request(self, function: str) -> Request:
        return Request("GET", self._path(function))

    def allocation(self, obj: dict, function: str) -> Allocation:
        limits = obj.get("limits")
        if not isinstance(limits, dict) or "memory" not in limits:
            raise AdapterError(f"openwhisk action {function}: the answer has no limits.memory")
        containers = int(limits.get("instances", 1)) if self.instances_limit else 1
        return Allocation(containers, limits["memory"] / self.memory_per_core, float(limits.get("concurrency", 1)))

    def plan(self, obj: dict, target: Target) -> list[Request]:
        limits = dict(obj.get("limits") or {})
        low, high = self.memory_range
        wanted = {"memory": int(min(max(round(target.cpu * self.memory_per_core), low), high))}
        if target.concurrency is not None:
            wanted["concurrency"] = max(1, int(round(target.concurrency)))
        if self.instances_limit:
            wanted["instances"] = int(target.containers)
        if all(limits.get(k) == v for k, v in wanted.items()):
            return []
        return [Request("PUT", self._path(target.name), {"limits": limits | wanted}, JSON,
                        query=(("overwrite", "true"),))]
