"""The agent stand-in's trace receiver and DogStatsD server (tests/doubles/agent_standin), fed by the
real ddtrace client on 127.0.0.1: what the Flask app's tests rely on (one JSON span per line)."""
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

STANDIN = Path(__file__).resolve().parents[2] / "tests/doubles/agent_standin/package/opt/datadog-agent/standin"
sys.path.insert(0, str(STANDIN))
sys.dont_write_bytecode = True

from standin_agent import intake  # noqa: E402

TRACED = """
from ddtrace.trace import tracer
with tracer.trace("flask.request", service="svc-under-test", resource="GET /api/apm", span_type="web") as root:
    root.set_tag("from_apm_route", "true")
    with tracer.trace("flask.dispatch_request") as child:
        child.set_metric("answer", 42)
tracer.shutdown()
"""


@pytest.fixture
def receiver(tmp_path):
    recorder = intake.Recorder(str(tmp_path / "traces.jsonl"))
    cfg = {"apm_config": {"enabled": True}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), intake.make_trace_handler(cfg, recorder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], tmp_path / "traces.jsonl"
    server.shutdown()


@pytest.mark.parametrize("api_version", ["v0.4", "v0.5"])
def test_ddtrace_spans_are_recorded_one_per_line(receiver, api_version):
    port, path = receiver
    env = {**os.environ, "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{port}", "DD_TRACE_API_VERSION": api_version,
           "DD_ENV": "unit", "DD_VERSION": "9.9.9", "DD_SERVICE": "svc-under-test",
           "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_REMOTE_CONFIGURATION_ENABLED": "false"}
    res = subprocess.run([sys.executable, "-c", TRACED], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(spans) == 2
    for span in spans:
        assert set(span) == {"service", "name", "resource", "trace_id", "span_id", "parent_id", "type", "error",
                             "start", "duration", "meta", "metrics"}
    root = next(s for s in spans if s["parent_id"] == 0)
    child = next(s for s in spans if s["parent_id"] == root["span_id"])
    assert (root["service"], root["name"], root["resource"], root["type"]) == (
        "svc-under-test", "flask.request", "GET /api/apm", "web")
    assert root["meta"]["env"] == "unit" and root["meta"]["version"] == "9.9.9"
    assert root["meta"]["from_apm_route"] == "true"
    assert child["trace_id"] == root["trace_id"] and child["metrics"]["answer"] == 42
    assert root["duration"] > 0 and root["error"] == 0


def test_info_lists_the_trace_endpoints(receiver):
    import urllib.request

    port, _ = receiver
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=5) as resp:
        info = json.load(resp)
    assert {"/v0.4/traces", "/v0.5/traces"} <= set(info["endpoints"])


def test_undecodable_payload_is_refused(receiver):
    import urllib.error
    import urllib.request

    port, path = receiver
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v0.4/traces", data=b"\xc1not msgpack", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400
    assert path.read_text() == ""


def test_dogstatsd_datagrams_are_recorded_line_by_line(tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "DOGSTATSD_FILE", str(tmp_path / "dogstatsd.log"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = intake.start_dogstatsd({"dogstatsd_port": port})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"page.views:1|c|#env:unit\nqueue.size:3|g", ("127.0.0.1", port))
    for _ in range(100):
        if recorder.count >= 2:
            break
        threading.Event().wait(0.05)
    assert (tmp_path / "dogstatsd.log").read_text().splitlines() == ["page.views:1|c|#env:unit", "queue.size:3|g"]


PROFILED = """
import time
from ddtrace.trace import tracer
end = time.time() + 6
while time.time() < end:
    with tracer.trace("work"):
        sum(i * i for i in range(20000))
"""


@pytest.fixture
def profile_receiver(tmp_path):
    recorder = intake.Recorder(str(tmp_path / "traces.jsonl"))
    profiles = intake.Recorder(str(tmp_path / "profiles.jsonl"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), intake.make_trace_handler({}, recorder, None, profiles))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], tmp_path / "profiles.jsonl"
    server.shutdown()


def test_the_profilers_uploads_are_recorded_with_their_event_and_files(profile_receiver):
    """ddtrace's profiler (DD_PROFILING_ENABLED) uploads to the agent's /profiling/v1/input, multipart; the receiver
    keeps the `event` part and the files' names and sizes, one line per upload."""
    port, path = profile_receiver
    env = {**os.environ, "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{port}", "DD_SERVICE": "svc-under-test",
           "DD_ENV": "unit", "DD_PROFILING_ENABLED": "true", "DD_PROFILING_UPLOAD_INTERVAL": "2",
           "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_REMOTE_CONFIGURATION_ENABLED": "false"}
    ddtrace_run = str(Path(sys.executable).with_name("ddtrace-run"))
    res = subprocess.run([ddtrace_run, sys.executable, "-c", PROFILED], env=env, capture_output=True, text=True,
                         timeout=90)
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records, res.stderr[-2000:]
    event = records[0]["event"]
    assert event["family"] == "python"
    assert "service:svc-under-test" in event["tags_profiler"] and "env:unit" in event["tags_profiler"]
    assert any(name.endswith(".pprof") and size > 0 for r in records for name, size in r["files"].items())


def test_an_upload_without_an_event_part_is_refused(profile_receiver):
    import urllib.error
    import urllib.request

    port, path = profile_receiver
    body = b'--b\r\nContent-Disposition: form-data; name="x"; filename="x.pprof"\r\n\r\nabc\r\n--b--\r\n'
    req = urllib.request.Request(f"http://127.0.0.1:{port}/profiling/v1/input", data=body, method="POST",
                                 headers={"Content-Type": "multipart/form-data; boundary=b"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400
    assert path.read_text() == ""


def test_dogstatsd_gauges_counts_and_distributions_become_series():
    """What the core agent does with DogStatsD before its flush: a gauge's last value, a count's sum (scaled by its
    sample rate), a distribution's average (the real agent sends a sketch); `host:` is the series' host."""
    sent = []
    aggregator = intake.DogStatsDAggregator("lab-host", sent.append)
    for line in ("runtime.python.mem.rss:100|d|#service:app,env:unit", "runtime.python.mem.rss:300|d|#env:unit,service:app",
                 "queue.size:3|g", "queue.size:5|g", "page.views:1|c|@0.5|#env:unit", "page.views:2|c|#env:unit",
                 "elsewhere:1|g|#host:other-host,a:b", "latency:4|h", "_sc|my.check|0", "not a metric"):
        aggregator.add(line)
    series = {(s["metric"], s["host"]): s for s in aggregator.flush()}
    assert set(series) == {("runtime.python.mem.rss", "lab-host"), ("queue.size", "lab-host"),
                           ("page.views", "lab-host"), ("elsewhere", "other-host")}
    rss = series[("runtime.python.mem.rss", "lab-host")]
    assert (rss["type"], rss["points"][0][1], sorted(rss["tags"])) == ("gauge", 200.0, ["env:unit", "service:app"])
    assert series[("queue.size", "lab-host")]["points"][0][1] == 5.0
    views = series[("page.views", "lab-host")]
    assert (views["type"], views["points"][0][1]) == ("count", 4.0)
    assert series[("elsewhere", "other-host")]["tags"] == ["a:b"]
    assert aggregator.flush() == []


def test_a_chunked_upload_is_read_whole(profile_receiver):
    """ddtrace 3.x's exporter (libdatadog) sends its profile with Transfer-Encoding: chunked, no Content-Length."""
    import http.client

    port, path = profile_receiver
    body = (b'--b\r\nContent-Disposition: form-data; name="event"; filename="event.json"\r\n\r\n'
            b'{"family": "python", "tags_profiler": "service:s"}\r\n'
            b'--b\r\nContent-Disposition: form-data; name="profile.pprof"; filename="profile.pprof"\r\n\r\nabcd\r\n'
            b'--b--\r\n')
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/profiling/v1/input", body=iter([body[:40], body[40:]]), encode_chunked=True,
                 headers={"Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked"})
    assert conn.getresponse().status == 200
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["event"]["family"] == "python" and record["files"] == {"profile.pprof": 4}
