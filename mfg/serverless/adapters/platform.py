"""The shared shape of an HTTP platform adapter: read the object, plan, send, re-read on 409.

A subclass says where a function's object lives (``object_request``), what allocation it
holds (``allocation``) and which requests bring it to a target (``plan``; none when it
is already there, so a repeated decision sends nothing).  ``apply`` runs

    read -> plan -> send each request -> done
                 \\-> a 409 (someone changed the object meanwhile): read again, plan again

at most ``conflict_attempts`` times.  Targets are absolute, so re-planning from a fresh
read never applies a change twice.
"""

from __future__ import annotations

import abc

from mfg.serverless.adapters.core import AdapterError, Allocation, Target
from mfg.serverless.adapters.http import Request, RetryPolicy, Transport, send

__all__ = ["HttpPlatform"]


class HttpPlatform(abc.ABC):
    """Base class of the Kubernetes, Knative and OpenWhisk adapters.

    Args:
      transport: sends ``Request`` values (``mfg.serverless.adapters.http``); a ``DryRunTransport``
        prints the mutating ones instead.
      namespace: the namespace of every function.
      retry: the retry policy of ``mfg.serverless.adapters.http.send``.
      conflict_attempts: re-read-and-re-apply rounds after a 409 before giving up.
    """

    name = "platform"

    def __init__(self, transport: Transport, namespace: str = "default", retry: RetryPolicy = RetryPolicy(),
                 conflict_attempts: int = 3):
        if not namespace:
            raise ValueError("a namespace is needed (e.g. 'default')")
        self.transport = transport
        self.namespace = namespace
        self.retry = retry
        self.conflict_attempts = conflict_attempts

    # -- what a subclass provides
    @abc.abstractmethod
    def object_request(self, function: str) -> Request:
        """The GET that reads ``function``'s object."""

    @abc.abstractmethod
    def allocation(self, obj: dict, function: str) -> Allocation:
        """The allocation the object read holds."""

    @abc.abstractmethod
    def plan(self, obj: dict, target: Target) -> list[Request]:
        """The requests that bring the object read to ``target`` (none when it is there)."""

    def execute(self, request: Request, target: Target) -> tuple[object, list[Request]]:
        """Send one planned request: (the response, the requests actually sent).  A subclass
        may fall back to another request here (Kubernetes: resize -> template patch)."""
        return self.send(request), [request]

    # -- the shared logic
    def send(self, request: Request, accept: tuple[int, ...] = (409,)):
        return send(self.transport, request, self.retry, accept)

    def fetch(self, function: str) -> dict:
        request = self.object_request(function)
        response = self.send(request, accept=())
        if not isinstance(response.body, dict):
            raise AdapterError(f"GET {request.path}: expected a JSON object, got {str(response.body)[:100]!r}")
        return response.body

    def read(self, function: str) -> Allocation:
        return self.allocation(self.fetch(function), function)

    def apply(self, target: Target) -> list[Request]:
        """Bring ``target.name`` to ``target``; returns the requests sent (empty: nothing to change)."""
        for _ in range(self.conflict_attempts):
            obj = self.fetch(target.name)
            sent, conflict = [], False
            for request in self.plan(obj, target):
                response, requests = self.execute(request, target)
                sent += requests
                if response.status == 409:
                    conflict = True
                    break
            if not conflict:
                return sent
        raise AdapterError(f"{target.name}: still conflicting (409) after {self.conflict_attempts} re-reads")
