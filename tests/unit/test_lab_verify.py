"""playbooks/verify.yml against the fake Datadog API, fed through its intake by the agent stand-in's own
payload code (forwarder.py): every line passes on a complete lab, each missing part fails its line with
what to look at, a 403 names the application key's scopes, and no key is printed, even at -vvv."""
import json
import sys
import time
import urllib.request

import msgpack
import pytest
import yaml
from lab_ansible import ROOT, environment, run_playbook

sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "tests/doubles"))
sys.path.insert(0, str(ROOT / "tests/doubles/agent_standin/package/opt/datadog-agent/standin"))
from fake_datadog_api.app import FakeDatadog  # noqa: E402
from fake_datadog_api.server import FakeDatadogServer  # noqa: E402
from standin_agent import forwarder  # noqa: E402

API_KEY = "apikey-" + "9b1d3f5a7c" * 3
APP_KEY = "appkey-" + "c4e6a8b0d2" * 4
LAB = yaml.safe_load((ROOT / "inventory/group_vars/all/lab.yml").read_text())
MARK = "[managed-by:ansible-datadog-resources"


@pytest.fixture
def fake():
    server = FakeDatadogServer(FakeDatadog(api_key=API_KEY, app_key=APP_KEY)).start_background()
    yield server
    server.stop()


def post(fake, path, body, content_type="application/json", app_key=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, "DD-API-KEY": API_KEY}
    if app_key:
        headers["DD-APPLICATION-KEY"] = app_key
    request = urllib.request.Request(fake.url + path, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def feed(fake, parts=("host", "my_metric", "postgres", "apm", "logs", "resources"), interval=45, tags=None):
    """What a working lab's agent and resources role send, built with the stand-in's payload code."""
    now = int(time.time())
    host = LAB["lab_hostname"]
    cfg = {"hostname": host, "tags": LAB["lab_host_tags"] if tags is None else tags, "api_key": API_KEY}
    if "host" in parts:
        assert post(fake, "/intake/", forwarder.host_metadata(cfg))[0] == 202
    series = []
    if "my_metric" in parts:
        series += [{"metric": "my_metric", "points": [[now - interval * i, 500 + i]], "tags": ["type:custom"],
                    "host": host, "type": "gauge"} for i in range(4)]
    if "postgres" in parts:
        rel = ["db:%s" % LAB["lab_database"], "table:%s" % LAB["lab_table"], "schema:public"]
        series += [{"metric": m, "points": [[now - 30, 12.0]], "tags": rel, "host": host, "type": "gauge"}
                   for m in ("postgresql.live_rows", "postgresql.heap_blocks_read")]
    if series:
        assert post(fake, "/api/v2/series", forwarder.series_payload(series))[0] == 202
    if "apm" in parts:
        spans = [{"service": LAB["lab_service"], "name": "flask.request", "resource": resource, "trace_id": n,
                  "span_id": n, "parent_id": 0, "type": "web", "error": 0, "start": (now - 60) * 10 ** 9,
                  "duration": 2 * 10 ** 6, "meta": {"env": LAB["lab_env"], "http.status_code": "200"}, "metrics": {}}
                 for n, resource in enumerate(["GET /", "GET /api/apm", "GET /api/trace"], start=1)]
        payload = msgpack.packb(forwarder.stats_payload(spans, host))
        assert post(fake, "/api/v0.2/stats", payload, "application/msgpack")[0] == 202
    if "logs" in parts:
        line = ("INFO [lab_app] [dd.service=%s dd.env=%s dd.version=1 dd.trace_id=123456789 dd.span_id=42] "
                "/api/apm answered" % (LAB["lab_service"], LAB["lab_env"]))
        item = {"message": line, "ddsource": "python", "service": LAB["lab_service"], "hostname": host, "ddtags": ""}
        assert post(fake, "/api/v2/logs", [item])[0] == 202
    if "resources" in parts:
        for title in ("Lab one", "Lab two"):
            post(fake, "/api/v1/dashboard", {"title": title, "layout_type": "ordered", "widgets": [],
                                              "description": "lab %s:x]" % MARK}, app_key=APP_KEY)
        _, monitor = post(fake, "/api/v1/monitor", {
            "name": "my_metric high", "type": "metric alert", "tags": ["managed-by:ansible-datadog-resources"],
            "query": "max(last_5m):max:my_metric{host:%s} > 800" % host,
            "options": {"thresholds": {"critical": 800, "warning": 500}}}, app_key=APP_KEY)
        for hour in (19, 20):
            start = time.strftime("%Y-%m-%dT", time.gmtime(now + 86400)) + "%02d:00:00" % hour
            post(fake, "/api/v2/downtime", {"data": {"type": "downtime", "attributes": {
                "scope": "host:%s" % host, "message": "night %s downtime:n%d]" % (MARK, hour),
                "monitor_identifier": {"monitor_id": monitor["id"]},
                "schedule": {"timezone": "UTC", "recurrences": [{"rrule": "FREQ=DAILY", "duration": "1h",
                                                                 "start": start}]}}}}, app_key=APP_KEY)


def verify(fake, *args, app_key=APP_KEY):
    env = environment(DD_API_KEY=API_KEY, DD_APP_KEY=app_key)
    started = time.monotonic()
    rc, out, _ = run_playbook("playbooks/verify.yml", "-e", "datadog_api_url=%s" % fake.url,
                              "-e", "lab_verify_timeout=0", *args, env=env, timeout=120)
    return rc, out, time.monotonic() - started


def line(out, check):
    """The printed line of one check: (passed?, text)."""
    for text in reversed(out.splitlines()):
        text = text.strip().lstrip("- ").strip("'\"")
        for state in ("passed", "FAILED"):
            if text.startswith(state) and text[len(state):].split()[:1] == [check]:
                return state == "passed", text
    raise AssertionError("no line for %s in:\n%s" % (check, out[-3000:]))


CHECKS = ("host", "my_metric", "postgres", "apm", "logs", "dashboards", "monitor", "downtimes")


def test_a_complete_lab_passes_every_line_with_urls_on_the_site_and_no_key_at_vvv(fake):
    feed(fake)
    rc, out, _ = verify(fake, "-vvv", "-e", "datadog_site=datadoghq.eu")
    assert rc == 0, out[-3000:]
    for check in CHECKS:
        assert line(out, check)[0], line(out, check)
    assert "GET /api/apm 1" in line(out, "apm")[1]
    assert "https://app.datadoghq.eu/dashboard/" in line(out, "dashboards")[1]
    assert "[OK]" in line(out, "monitor")[1] or "[Warn]" in line(out, "monitor")[1]
    assert API_KEY not in out and APP_KEY not in out


def test_each_missing_part_fails_its_line_with_what_to_look_at_and_no_key(fake):
    feed(fake, parts=("host", "resources"), tags=LAB["lab_host_tags"][:2])
    rc, out, _ = verify(fake, "-vvv")
    assert rc != 0
    assert "without the tags %s" % LAB["lab_host_tags"][2] in line(out, "host")[1]
    assert "datadog-agent check custom_random" in line(out, "my_metric")[1]
    assert "datadog-agent check postgres" in line(out, "postgres")[1]
    apm = line(out, "apm")
    assert not apm[0] and "GET /api/trace" in apm[1] and "systemctl status %s" % LAB["lab_service"] in apm[1]
    assert "no logs" in line(out, "logs")[1]
    assert line(out, "dashboards")[0] and line(out, "monitor")[0]
    assert "5 check(s) failed" in out
    assert API_KEY not in out and APP_KEY not in out


def test_points_not_45_s_apart_fail_the_custom_metric_line(fake):
    feed(fake, parts=("my_metric",), interval=15)
    rc, out, _ = verify(fake)
    assert rc != 0
    assert "min_collection_interval" in line(out, "my_metric")[1]


def test_a_refused_application_key_is_named_with_the_scopes_and_ends_the_wait_at_once(fake):
    feed(fake)
    rc, out, took = verify(fake, "-e", "lab_verify_timeout=120", "-e", "lab_verify_poll=5", app_key=APP_KEY + "x")
    assert rc != 0
    assert "application key" in out and "metrics_read" in out and "403" in out
    assert took < 60, "a 403 must not be waited on"
    assert APP_KEY not in out and API_KEY not in out


def test_it_waits_with_progress_for_data_that_arrives_late_and_bounds_the_wait(fake):
    feed(fake, parts=("resources",))
    rc, out, took = verify(fake, "-e", "lab_verify_timeout=4", "-e", "lab_verify_poll=2")
    assert rc != 0 and "RETRYING" in out and took < 60
    assert "retries left" in out


def test_fake_intake_refuses_bodies_datadog_refuses(fake):
    with pytest.raises(urllib.error.HTTPError) as err:
        post(fake, "/api/v2/series", {"series": [{"metric": "x", "points": [{"timestamp": "soon"}]}]})
    assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as err:
        post(fake, "/api/v2/logs", {"message": "not a list"})
    assert err.value.code == 400


def test_verify_makes_only_read_calls(fake):
    feed(fake)
    urllib.request.urlopen(urllib.request.Request(fake.url + "/fake/requests", method="DELETE"), timeout=10).read()
    rc, out, _ = verify(fake)
    assert rc == 0, out[-2000:]
    with urllib.request.urlopen(fake.url + "/fake/requests", timeout=10) as response:
        seen = json.loads(response.read())
    assert seen and all(r["method"] == "GET" or r["path"] == "/api/v2/logs/events/search" for r in seen), seen


def test_verify_reads_the_lab_values_from_the_inventory():
    mapped = (ROOT / "inventory/group_vars/all/lab_verify.yml").read_text()
    for name in ("lab_hostname", "lab_host_tags", "lab_service", "lab_env", "lab_database", "lab_table"):
        assert "{{ %s }}" % name in mapped


def test_a_narrowed_run_asks_only_its_checks_and_prints_its_one_line(fake):
    feed(fake, parts=("apm",))
    rc, out, _ = verify(fake, "-e", '{"lab_verify_checks": ["apm"]}')
    assert rc == 0, out[-2000:]
    assert line(out, "apm")[0]
    with pytest.raises(AssertionError):
        line(out, "host")
