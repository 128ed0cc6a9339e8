"""The observation path against a real Prometheus server (Debian's ``prometheus`` package).

The test runs a small exporter on loopback whose counters grow at known rates and whose
latency histogram has a known distribution, starts Prometheus scraping it every second,
and reads the functions' metrics back through ``PrometheusSource`` with the default
queries.  .ci/run installs Prometheus and sets MFG_REQUIRE_PROMETHEUS=1, so that a missing
binary fails there instead of skipping.
"""

import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mfg.serverless.adapters import AdapterError, PrometheusSource, RetryPolicy, UrllibTransport

PROMETHEUS = shutil.which("prometheus")
if PROMETHEUS is None and os.environ.get("MFG_REQUIRE_PROMETHEUS"):
    raise RuntimeError("MFG_REQUIRE_PROMETHEUS is set but no prometheus binary is on PATH "
                       "(Debian: apt-get install prometheus)")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)")

# function -> (requests/s, CPU cores used, in-flight requests)
TRUTH = {"thumbnail": (12.0, 0.6, 3.0), "checkout": (2.5, 0.1, 0.5)}
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The fraction of requests at or below each bucket's bound (the same for both functions).
CDF = (0.30, 0.60, 0.90, 0.97, 0.995, 1.0)


def exposition(elapsed: float) -> str:
    lines = ["# TYPE function_requests_total counter", "# TYPE function_cpu_seconds_total counter",
             "# TYPE function_in_flight_requests gauge", "# TYPE function_request_duration_seconds histogram"]
    for name, (rate, cpu, in_flight) in TRUTH.items():
        total = rate * elapsed
        lines.append(f'function_requests_total{{function="{name}"}} {total}')
        lines.append(f'function_cpu_seconds_total{{function="{name}"}} {cpu * elapsed}')
        lines.append(f'function_in_flight_requests{{function="{name}"}} {in_flight}')
        for bound, fraction in zip(BUCKETS, CDF):
            lines.append(f'function_request_duration_seconds_bucket{{function="{name}",le="{bound}"}} {total * fraction}')
        lines.append(f'function_request_duration_seconds_bucket{{function="{name}",le="+Inf"}} {total}')
        lines.append(f'function_request_duration_seconds_count{{function="{name}"}} {total}')
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    started = time.time()

    class Exporter(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = exposition(time.time() - started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: functions
    static_configs:
      - targets: ["127.0.0.1:{exporter.server_address[1]}"]
""")
    port = free_port()
    process = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=open(folder / "prometheus.log", "w"))
    yield f"http://127.0.0.1:{port}", started
    process.terminate()
    process.wait(timeout=20)
    exporter.shutdown()


def test_prometheus_source_reads_rates_cpu_latency_and_concurrency(prometheus):
    url, _ = prometheus
    source = PrometheusSource(UrllibTransport(url, timeout=5), window="5s",
                              retry=RetryPolicy(max_attempts=3, base_delay=0.5, jitter=0))
    deadline, metrics, last_error = time.time() + 60, [], None
    while time.time() < deadline:                 # until Prometheus is up and has a full window of samples
        try:
            scrapes = source.query("count_over_time(function_in_flight_requests[6s])")
            if max(scrapes.values(), default=0) >= 6:
                metrics = source.observe()
                break
        except Exception as err:                  # starting up: connection refused, 503
            last_error = err
        time.sleep(1)
    assert len(metrics) == len(TRUTH), f"Prometheus never answered with both functions ({last_error})"
    for m in metrics:
        rate, cpu, in_flight = TRUTH[m.name]
        assert m.request_rate == pytest.approx(rate, rel=0.02)
        assert m.cpu_usage == pytest.approx(cpu, rel=0.02)
        assert m.concurrency == pytest.approx(in_flight)
        # histogram_quantile interpolates linearly inside the bucket holding the quantile:
        # p50 lies in (0.05, 0.1] at 0.05 + 0.05 (0.5 - 0.3) / 0.3; p99 in (0.5, 1.0].
        assert m.latency_p50 == pytest.approx(0.05 + 0.05 * (0.5 - 0.3) / 0.3, rel=0.02)
        assert m.latency_p99 == pytest.approx(0.5 + 0.5 * (0.99 - 0.97) / 0.025, rel=0.02)


def test_a_query_error_names_the_query(prometheus):
    source = PrometheusSource(UrllibTransport(prometheus[0], timeout=5), queries={"request_rate": "sum by ("},
                              retry=RetryPolicy(max_attempts=1))
    with pytest.raises(AdapterError, match=r"query 'sum by \(' failed: .*parse error"):
        source.observe()
