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
from standin_agent import dbm, forwarder, intake  # noqa: E402

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


PARTS = ("host", "my_metric", "postgres", "dbm", "apm", "db_spans", "runtime", "logs", "resources")


def feed(fake, parts=PARTS, interval=45, tags=None):
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
    if "runtime" in parts:
        runtime = intake.DogStatsDAggregator(host, None)
        for metric, value in (("runtime.python.mem.rss", 5.0e7), ("runtime.python.cpu.percent", 2.5)):
            runtime.add("%s:%s|d|#service:%s,env:%s,lang:python" % (metric, value, LAB["lab_service"], LAB["lab_env"]))
        series += runtime.flush()
    if series:
        assert post(fake, "/api/v2/series", forwarder.series_payload(series))[0] == 202
    if "dbm" in parts:
        rows = [{"query_signature": "5e3f2c1a9b8d7e6f", "query": "SELECT count(*) FROM %s" % LAB["lab_table"],
                 "datname": LAB["lab_database"], "rolname": LAB["lab_app_db_user"], "calls": 7, "rows": 7,
                 "total_exec_time": 1.5}]
        assert post(fake, "/api/v2/dbmmetrics", [dbm.query_metrics_event(host, [], rows, 15, "v15.10.0")])[0] == 202
    if "apm" in parts:
        spans = [{"service": LAB["lab_service"], "name": "flask.request", "resource": resource, "trace_id": n,
                  "span_id": n, "parent_id": 0, "type": "web", "error": 0, "start": (now - 60) * 10 ** 9,
                  "duration": 2 * 10 ** 6, "meta": {"env": LAB["lab_env"], "http.status_code": "200"}, "metrics": {}}
                 for n, resource in enumerate(["GET /", "GET /api/apm", "GET /api/trace"], start=1)]
        if "db_spans" in parts:
            # psycopg's span under the request's: the app's service (integration service names removed), measured.
            spans.append({"service": LAB["lab_service"], "name": "postgres.query", "resource": "SELECT 1",
                          "trace_id": 1, "span_id": 99, "parent_id": 1, "type": "sql", "error": 0,
                          "start": (now - 60) * 10 ** 9, "duration": 10 ** 6, "meta": {"env": LAB["lab_env"]},
                          "metrics": {"_dd.measured": 1}})
        payload = msgpack.packb(forwarder.stats_payload(spans, host))
        assert post(fake, "/api/v0.2/stats", payload, "application/msgpack")[0] == 202
    if "logs" in parts:
        line = ("INFO [lab_app] [dd.service=%s dd.env=%s dd.version=1 dd.trace_id=123456789 dd.span_id=42] "
                "/api/apm answered" % (LAB["lab_service"], LAB["lab_env"]))
        item = {"message": line, "ddsource": "python", "service": LAB["lab_service"], "hostname": host, "ddtags": ""}
        assert post(fake, "/api/v2/logs", [item])[0] == 202
    if "resources" in parts:
        for title in ("Lab one", "Lab two", "Lab three"):
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


CHECKS = ("host", "my_metric", "postgres", "dbm", "apm", "db_spans", "runtime", "logs", "dashboards", "monitor",
          "downtimes")


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
    assert "shared_preload_libraries" in line(out, "dbm")[1] and "dbm: true" in line(out, "dbm")[1]
    assert "/api/db" in line(out, "db_spans")[1]
    assert "DD_RUNTIME_METRICS_ENABLED=true" in line(out, "runtime")[1]
    assert line(out, "dashboards")[0] and line(out, "monitor")[0]
    assert "8 check(s) failed" in out
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


# ---- the downtimes line at any hour (issue 26) --------------------------------------------------------
# Datadog's API reference, List downtimes (GET /api/v2/downtime): current_only "Only return downtimes that
# are active when the request is made", so the lab's downtimes, scheduled through working hours, are
# listed without it; DowntimeStatus is active, canceled, ended or scheduled; a recurring schedule's
# current_downtime is the period in progress or the next one. The fake answers so at the time its clock
# is set to (PUT /fake/clock).

sys.path.insert(0, str(ROOT / "roles/lab_verify/module_utils"))
import lab_verify_checks  # noqa: E402

ZONE = "America/New_York"


def set_clock(fake, now):
    request = urllib.request.Request(fake.url + "/fake/clock", data=json.dumps({"now": now}).encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def make_lab_downtimes(fake, timezone=ZONE):
    """The lab's two downtimes as roles/datadog_resources makes them (its templates/downtimes and its
    managed-by line), on Monday 2026-12-07 at 08:00 in the downtimes' timezone; their ids."""
    set_clock(fake, "2026-12-07T08:00:00-05:00")
    _, monitor = post(fake, "/api/v1/monitor", {
        "name": "my_metric high", "type": "metric alert", "tags": ["managed-by:ansible-datadog-resources"],
        "query": "max(last_5m):max:my_metric{host:x} > 800"}, app_key=APP_KEY)
    ids = {}
    for name, rrule, start, duration in (("Weekday nights", "FREQ=WEEKLY;BYDAY=SU,MO,TU,WE,TH", "2026-12-07T19:00",
                                          "14h"), ("Weekend", "FREQ=WEEKLY;BYDAY=FR", "2026-12-11T19:00", "49h")):
        _, made = post(fake, "/api/v2/downtime", {"data": {"type": "downtime", "attributes": {
            "scope": "*", "message": "Muted.\n\n%s downtime:%s]" % (MARK, name), "display_timezone": timezone,
            "monitor_identifier": {"monitor_id": monitor["id"]},
            "schedule": {"timezone": timezone, "recurrences": [{"rrule": rrule, "duration": duration,
                                                                "start": start}]}}}}, app_key=APP_KEY)
        ids[name] = made["data"]["id"]
    return ids


def downtimes_line(fake):
    api = lab_verify_checks.Api(fake.url, API_KEY, APP_KEY)
    try:
        spec = {"managed_by": "ansible-datadog-resources", "expected": {"dashboards": 0, "monitors": 0, "downtimes": 2}}
        results = lab_verify_checks.check_resources(api, spec, "https://app.datadoghq.com")
    finally:
        api.close()
    line_ = next(r for r in results if r["check"] == "downtimes")
    return line_["passed"], line_["line"]


@pytest.mark.parametrize("now, nights, weekend", [
    ("2026-12-08T11:00:00-05:00", "scheduled, next 2026-12-08 19:00", "scheduled, next 2026-12-11 19:00"),
    ("2026-12-09T02:00:00-05:00", "active, until 2026-12-09 09:00", "scheduled, next 2026-12-11 19:00"),
    ("2026-12-12T15:00:00-05:00", "scheduled, next 2026-12-13 19:00", "active, until 2026-12-13 20:00"),
], ids=["Tuesday 11:00 (a working hour)", "Wednesday 02:00 (a weekday night)", "Saturday 15:00 (the weekend)"])
def test_the_downtimes_line_passes_at_any_hour_with_each_ones_status_and_next_start(fake, now, nights, weekend):
    make_lab_downtimes(fake)
    set_clock(fake, now)
    passed, text = downtimes_line(fake)
    assert passed, text
    assert text.startswith("2 of 2 downtimes: Weekday nights (%s %s) https://app.datadoghq.com/monitors/downtimes"
                           "?id=" % (nights, ZONE)), text
    assert "; Weekend (%s %s) " % (weekend, ZONE) in text, text


def test_a_canceled_downtime_fails_the_line_naming_it(fake):
    ids = make_lab_downtimes(fake)
    request = urllib.request.Request(fake.url + "/api/v2/downtime/" + ids["Weekend"], method="DELETE",
                                     headers={"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY})
    urllib.request.urlopen(request, timeout=10).read()
    set_clock(fake, "2026-12-08T11:00:00-05:00")
    passed, text = downtimes_line(fake)
    assert not passed
    assert text.startswith("1 of 2 downtimes: Weekday nights (scheduled, next 2026-12-08 19:00 %s)" % ZONE), text
    assert "; Weekend is canceled; run playbooks/resources.yml" in text, text


def test_a_missing_downtime_fails_the_line_and_says_what_to_run(fake):
    passed, text = downtimes_line(fake)
    assert not passed and text == "0 of 2 downtimes: run playbooks/resources.yml (DD_APP_KEY set)", text


def test_the_downtimes_of_another_mark_or_after_a_page_are_counted_right(fake):
    for number in range(lab_verify_checks.PAGE):   # someone else's, listed before the lab's on a second page
        post(fake, "/api/v2/downtime", {"data": {"type": "downtime", "attributes": {
            "scope": "*", "monitor_identifier": {"monitor_tags": ["team:other"]},
            "message": "[managed-by:other downtime:Weekend] %d" % number}}}, app_key=APP_KEY)
    make_lab_downtimes(fake)
    set_clock(fake, "2026-12-08T11:00:00-05:00")
    passed, text = downtimes_line(fake)
    assert passed and text.startswith("2 of 2 downtimes"), text


def test_verify_passes_at_a_working_hour_on_tuesday(fake):
    feed(fake)
    make_lab_downtimes(fake, timezone="UTC")
    set_clock(fake, "2026-12-08T11:00:00+00:00")
    rc, out, _ = verify(fake)
    assert rc == 0, out[-3000:]
    passed, text = line(out, "downtimes")
    assert passed, text
    assert "Weekday nights (scheduled, next 2026-12-08 19:00 UTC)" in text, text
    assert "Weekend (scheduled, next 2026-12-11 19:00 UTC)" in text, text


# ---- the other lines against Datadog's documented semantics (issue 26) ----------------------------------
# GET /api/v1/query: from and to are "seconds since the Unix epoch"; Datadog rolls points up by the time
# frame asked, 20 s for an hour up to 5 min for a day ("Rollup Interval, API",
# docs.datadoghq.com/dashboards/functions/rollup), and each series' `interval` is that width in seconds.

def metric_spec(**changes):
    spec = {"host": LAB["lab_hostname"], "custom_metric": "my_metric", "custom_metric_tag": "type:custom",
            "custom_interval": 45}
    spec.update(changes)
    return spec


def test_the_fake_rolls_points_up_as_datadogs_api_does_by_time_frame(fake):
    feed(fake, parts=("my_metric",))
    api = lab_verify_checks.Api(fake.url, API_KEY, APP_KEY)
    try:
        now = time.time()
        hour = api.query("avg:my_metric{type:custom}", now - 3600, now)
        day = api.query("avg:my_metric{type:custom}", now - 86400, now)
    finally:
        api.close()
    assert hour[0]["interval"] == 20 and len(hour[0]["pointlist"]) == 4
    assert day[0]["interval"] == 300 and all(p[0] % 300000 == 0 for p in day[0]["pointlist"])
    assert len(day[0]["pointlist"]) < 4


@pytest.mark.parametrize("since_ago", [300, 3600, 86400, 7 * 86400])
def test_my_metric_45_s_apart_passes_whatever_the_window_asked(fake, since_ago):
    feed(fake, parts=("my_metric",))
    api = lab_verify_checks.Api(fake.url, API_KEY, APP_KEY)
    try:
        now = time.time()
        result = lab_verify_checks.check_custom_metric(api, metric_spec(), now - since_ago, now, "https://x")
    finally:
        api.close()
    assert result["passed"], result


@pytest.mark.parametrize("interval", [15, 90])
def test_my_metric_at_another_interval_fails_at_the_default_rollup(fake, interval):
    feed(fake, parts=("my_metric",), interval=interval)
    api = lab_verify_checks.Api(fake.url, API_KEY, APP_KEY)
    try:
        now = time.time()
        result = lab_verify_checks.check_custom_metric(api, metric_spec(), now - 900, now, "https://x")
    finally:
        api.close()
    assert not result["passed"] and "min_collection_interval" in result["line"], result


# POST /api/v2/logs/events/search: filter.from and filter.to "support date math and regular timestamps
# (milliseconds)", and default to now-15m and now (datadog-api-client's LogsQueryFilter).

def search_logs(fake, flt):
    request = urllib.request.Request(fake.url + "/api/v2/logs/events/search", method="POST",
                                     data=json.dumps({"filter": flt}).encode(),
                                     headers={"Content-Type": "application/json", "DD-API-KEY": API_KEY,
                                              "DD-APPLICATION-KEY": APP_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def test_the_logs_window_takes_milliseconds_and_date_math_as_datadog_documents(fake):
    feed(fake, parts=("logs",))
    now_ms = int(time.time() * 1000)
    assert search_logs(fake, {"query": "service:%s" % LAB["lab_service"], "from": str(now_ms - 60000)})
    assert not search_logs(fake, {"query": "*", "from": str(now_ms + 60000)})
    assert search_logs(fake, {"query": "*", "from": "now-1m", "to": "now"})
    assert search_logs(fake, {"query": "*"})   # the default window: the last 15 minutes


def test_verify_counts_only_the_logs_since_its_start(fake):
    feed(fake, parts=("logs",))
    api = lab_verify_checks.Api(fake.url, API_KEY, APP_KEY)
    try:
        spec = {"service": LAB["lab_service"], "host": LAB["lab_hostname"], "logs": True}
        since = time.time() - 120
        result = lab_verify_checks.check_logs(api, spec, since, "https://x")
        assert result["passed"], result
        assert not lab_verify_checks.check_logs(api, spec, time.time() + 60, "https://x")["passed"]
    finally:
        api.close()


def test_the_logs_boolean_passed_as_a_string_turns_the_logs_line_off_and_on(fake):
    """`-e lab_verify_logs=false` is the string "false": no logs are expected then; `=true` expects them."""
    feed(fake, parts=("host",))
    rc, out, _ = verify(fake, "-e", "lab_verify_logs=false", "-e", '{"lab_verify_checks": ["logs"]}')
    assert rc == 0, out[-3000:]
    assert line(out, "logs")[0] and "log collection is off" in line(out, "logs")[1], line(out, "logs")
    rc, out, _ = verify(fake, "-e", "lab_verify_logs=true", "-e", '{"lab_verify_checks": ["logs"]}')
    assert rc != 0
    assert not line(out, "logs")[0] and "no logs for" in line(out, "logs")[1]


@pytest.mark.parametrize("off,on,check,said", [
    ("lab_verify_dbm=false", "lab_verify_dbm=true", "dbm", "Database Monitoring is off"),
    ("lab_verify_runtime_metrics=false", "lab_verify_runtime_metrics=true", "runtime", "runtime metrics are off"),
])
def test_the_dbm_and_runtime_booleans_passed_as_strings_turn_their_lines_off_and_on(fake, off, on, check, said):
    """`-e lab_verify_dbm=false` is the string "false": nothing is expected then; `=true` expects the data."""
    feed(fake, parts=("host",))
    only = '{"lab_verify_checks": ["%s"]}' % check
    rc, out, _ = verify(fake, "-e", off, "-e", only)
    assert rc == 0, out[-3000:]
    assert line(out, check)[0] and said in line(out, check)[1], line(out, check)
    rc, out, _ = verify(fake, "-e", on, "-e", only)
    assert rc != 0
    assert not line(out, check)[0] and "no " in line(out, check)[1]
    feed(fake, parts=(check,))
    rc, out, _ = verify(fake, "-e", on, "-e", only)
    assert rc == 0 and line(out, check)[0], out[-3000:]
