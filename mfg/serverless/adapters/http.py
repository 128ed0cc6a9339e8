"""HTTP requests as values, one retry policy, and the transports that send them.

Every adapter builds ``Request`` values (method, path, query, content type, JSON body)
and hands them to ``send``, which owns the retry rule for all platforms:

  * 2xx: done;
  * 429: wait ``Retry-After`` seconds (capped at ``max_delay``), or the backoff, and retry;
  * 5xx, a timeout, a refused or dropped connection: exponential backoff
    ``base_delay * 2**k`` (capped, with optional jitter), and retry;
  * 409: returned to the adapter, which re-reads the object and re-applies its target;
  * any other 4xx: no retry, ``AdapterError``.

Transports:
  ``UrllibTransport``      the standard library, TLS verified by default (OpenWhisk, Prometheus)
  ``KubernetesTransport``  the official kubernetes client (kubeconfig or in-cluster
                           credentials and TLS settings; Kubernetes, Knative)
  ``DryRunTransport``      prints every mutating request as a JSON line and sends only
                           reads, through the transport it wraps

Credentials travel in transport headers only; ``Request`` values, logs and dry-run
lines never hold them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Protocol, TextIO

from mfg.serverless.adapters.core import AdapterError

__all__ = ["Request", "Response", "Transport", "RetryPolicy", "send", "UrllibTransport", "KubernetesTransport",
           "DryRunTransport", "TransientError", "basic_auth_header"]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request: ``path`` relative to the platform's base URL, ``body`` JSON-able."""

    method: str
    path: str
    body: Any = None
    content_type: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def mutating(self) -> bool:
        return self.method not in ("GET", "HEAD")

    def url_path(self) -> str:
        return self.path + ("?" + urllib.parse.urlencode(self.query) if self.query else "")

    def as_json(self) -> dict:
        """The request as a dry-run line shows it (no headers, so no credentials)."""
        line = {"method": self.method, "path": self.url_path()}
        if self.content_type:
            line["content_type"] = self.content_type
        if self.body is not None:
            line["body"] = self.body
        return line


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: Any = None
    headers: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class TransientError(ConnectionError):
    """A timeout, a refused or dropped connection: worth retrying."""


class Transport(Protocol):
    def __call__(self, request: Request) -> Response: ...


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How ``send`` retries: at most ``max_attempts`` tries in all.

    Attributes:
      base_delay, max_delay: backoff base_delay * 2**k seconds, capped at max_delay
        (Retry-After is capped there too).
      jitter: each wait is multiplied by 1 + jitter * U(0, 1) (spreads a fleet's retries).
      sleep: the waiting function (tests record the waits instead of sleeping).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.1
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** attempt) * (1 + self.jitter * random.random())


def _retry_after(headers: dict) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None                                     # an HTTP date: use the backoff


def send(transport: Transport, request: Request, retry: RetryPolicy = RetryPolicy(),
         accept: tuple[int, ...] = (409,)) -> Response:
    """Send ``request`` with the retry rule of the module docstring.

    Returns a 2xx response or one whose status is in ``accept`` (409 by default, for the
    adapter to re-read); raises ``AdapterError`` on another 4xx or when the attempts run out.
    """
    last = "no attempt"
    for attempt in range(retry.max_attempts):
        try:
            response = transport(request)
        except TransientError as err:
            last, wait = f"{type(err).__name__}: {err}", retry.backoff(attempt)
        else:
            if response.ok or response.status in accept:
                return response
            if response.status == 429:
                hinted = _retry_after(response.headers)
                last = "429 Too Many Requests"
                wait = min(hinted, retry.max_delay) if hinted is not None else retry.backoff(attempt)
            elif response.status >= 500:
                last, wait = f"{response.status} server error", retry.backoff(attempt)
            else:
                raise AdapterError(f"{request.method} {request.path}: refused with {response.status} "
                                   f"({_reason(response.body)}); not retried")
        if attempt + 1 < retry.max_attempts:
            retry.sleep(wait)
    raise AdapterError(f"{request.method} {request.path}: gave up after {retry.max_attempts} attempts ({last})",
                       permanent=False)


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:200]
    return str(body)[:200]


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def basic_auth_header(credentials: str) -> str:
    """``user:password`` (OpenWhisk's ``uuid:key``) as an Authorization header value."""
    if ":" not in credentials:
        raise ValueError("basic-auth credentials must look like 'user:password'")
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class UrllibTransport:
    """Requests with the standard library: ``base_url`` + path, JSON bodies.

    TLS certificates are verified unless ``verify=False`` (or checked against
    ``ca_file``); ``headers`` (e.g. Authorization) are sent with every request and never
    logged.
    """

    def __init__(self, base_url: str, headers: dict | None = None, timeout: float = 10.0, verify: bool = True,
                 ca_file: str | None = None):
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers or {})
        self.timeout = timeout
        self._context = None
        if scheme == "https":
            self._context = ssl.create_default_context(cafile=ca_file)
            if not verify:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE

    def __repr__(self) -> str:                       # never shows the headers
        return f"UrllibTransport({self.base_url!r})"

    def __call__(self, request: Request) -> Response:
        data = None if request.body is None else json.dumps(request.body).encode()
        headers = dict(self._headers, Accept=JSON)
        if request.content_type:
            headers["Content-Type"] = request.content_type
        http_request = urllib.request.Request(self.base_url + request.url_path(), data=data, headers=headers,
                                              method=request.method)
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout, context=self._context) as reply:
                return Response(reply.status, _decode(reply.read()), dict(reply.headers.items()))
        except urllib.error.HTTPError as err:
            return Response(err.code, _decode(err.read()), dict(err.headers.items()))
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise AdapterError(f"{self.base_url}: TLS certificate not trusted ({reason.verify_message}); "
                                   f"give a CA file, or --insecure to skip the check") from None
            raise TransientError(f"{request.method} {self.base_url}{request.path}: {reason}") from None


class KubernetesTransport:
    """Requests through the official kubernetes client's ``ApiClient``.

    Credentials and TLS come from the kubeconfig (``KUBECONFIG`` or ~/.kube/config) or
    the in-cluster service account; urllib3's own retries are off, ``send`` retries.
    """

    def __init__(self, api_client=None, timeout: float = 10.0, context: str | None = None):
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                # KUBECONFIG is read now: the client reads it once, when it is imported.
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), context=context)
            configuration = client.Configuration.get_default_copy()
            configuration.retries = False
            api_client = client.ApiClient(configuration)
        self.api_client = api_client
        self.timeout = timeout

    def __call__(self, request: Request) -> Response:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": JSON}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        method, url, headers, body, post = self.api_client.param_serialize(
            request.method, request.path, query_params=list(request.query) or None, header_params=headers,
            body=request.body, auth_settings=["BearerToken"])
        try:
            reply = self.api_client.call_api(method, url, headers, body, post, _request_timeout=self.timeout)
            raw = reply.read()
        except ApiException as err:                      # TLS failure: the client reports status 0
            raise AdapterError(f"{request.method} {request.path}: {err.reason}") from None
        except urllib3.exceptions.HTTPError as err:      # timeouts, refused or dropped connections
            raise TransientError(f"{request.method} {request.path}: {type(err).__name__}") from None
        return Response(reply.status, _decode(raw), dict(reply.headers.items()))


class DryRunTransport:
    """Prints each mutating request as one JSON line on ``stream`` and answers 200 with its
    body; reads (GET) go to ``reads``, the real transport, so that the printed requests are
    the ones a real run would send now."""

    def __init__(self, reads: Transport, stream: TextIO | None = None):
        self.reads = reads
        self.stream = stream

    def __call__(self, request: Request) -> Response:
        if not request.mutating:
            return self.reads(request)
        stream = self.stream or sys.stdout
        stream.write(json.dumps({"dry_run": True, **request.as_json()}, sort_keys=True) + "\n")
        stream.flush()
        return Response(200, request.body)
