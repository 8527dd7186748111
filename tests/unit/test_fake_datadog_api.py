"""The fake Datadog API (tests/doubles/fake_datadog_api): keys, bodies, state, server fields, faults, CLI."""

import datetime
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from zoneinfo import ZoneInfo

import pytest
from datadog_api_client import Configuration
from datadog_api_client.model_utils import validate_and_convert_types
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v2.model.downtime_response import DowntimeResponse
from datadog_api_client.v2.model.list_downtimes_response import ListDowntimesResponse
from datadog_resources_support import DEFAULT_API_KEY, DEFAULT_APP_KEY, ROOT, FakeDatadog, control, start_fake

KEYS = {"DD-API-KEY": DEFAULT_API_KEY, "DD-APPLICATION-KEY": DEFAULT_APP_KEY}
DASHBOARD = {
    "title": "Board", "layout_type": "ordered", "description": "d",
    "widgets": [{"definition": {"type": "timeseries", "requests": [{"q": "avg:m{*}", "display_type": "bars"}]}}],
}
MONITOR = {"name": "M", "type": "metric alert", "query": "max(last_5m):max:m{*} > 800",
           "tags": ["a:b"], "options": {"thresholds": {"critical": 800, "warning": 500}}}


def call(fake, method, path, body=None, headers=KEYS):
    reply = fake.handle(method, path, headers, json.dumps(body).encode() if body is not None else b"")
    return reply.status, reply.payload


def downtime_body(monitor_id, **attributes):
    attrs = {"scope": "*", "monitor_identifier": {"monitor_id": monitor_id}, "message": "m",
             "schedule": {"timezone": "UTC", "recurrences": [{"rrule": "FREQ=WEEKLY;BYDAY=SA", "duration": "2d"}]}}
    attrs.update(attributes)
    return {"data": {"type": "downtime", "attributes": attrs}}


def parses_cleanly(payload, model):
    model_instance = validate_and_convert_types(payload, (model,), ["received"], True, True, Configuration())
    return not getattr(model_instance, "_unparsed", False)


def test_without_keys_every_endpoint_answers_403():
    fake = FakeDatadog()
    for headers in ({}, {"DD-API-KEY": DEFAULT_API_KEY}, {"DD-APPLICATION-KEY": DEFAULT_APP_KEY},
                    {"DD-API-KEY": DEFAULT_API_KEY, "DD-APPLICATION-KEY": "wrong"}):
        assert call(fake, "GET", "/api/v1/dashboard", headers=headers) == (403, {"errors": ["Forbidden"]})
    assert call(fake, "GET", "/api/v1/dashboard")[0] == 200


def test_validate_checks_the_api_key_only():
    fake = FakeDatadog()
    assert call(fake, "GET", "/api/v1/validate", headers={"DD-API-KEY": DEFAULT_API_KEY}) == (200, {"valid": True})
    assert call(fake, "GET", "/api/v1/validate", headers={"DD-API-KEY": "nope"})[0] == 403


def test_dashboard_gets_server_fields_and_widget_ids_and_lists_as_summary():
    fake = FakeDatadog()
    status, created = call(fake, "POST", "/api/v1/dashboard", DASHBOARD)
    assert status == 200
    assert created["id"].count("-") == 2 and created["author_handle"] and created["created_at"]
    assert isinstance(created["widgets"][0]["id"], int)
    assert parses_cleanly(created, Dashboard)
    status, listed = call(fake, "GET", "/api/v1/dashboard")
    assert listed["dashboards"] == [{k: created[k] for k in listed["dashboards"][0]}]
    assert "widgets" not in listed["dashboards"][0]
    assert call(fake, "DELETE", "/api/v1/dashboard/" + created["id"]) == (
        200, {"deleted_dashboard_id": created["id"]})
    assert call(fake, "GET", "/api/v1/dashboard/" + created["id"])[0] == 404


@pytest.mark.parametrize("change, error", [
    ({"type": "timeseriez"}, "body.widgets[0].definition.type: unknown type 'timeseriez'"),
    ({"requests": [{"q": "x", "display_type": "barz"}]},
     "body.widgets[0].definition.requests[0].display_type: invalid value 'barz'"),
    ({"legend": True}, "body.widgets[0].definition.legend: unknown field"),
])
def test_bad_dashboard_bodies_get_400_naming_the_field(change, error):
    fake = FakeDatadog()
    body = json.loads(json.dumps(DASHBOARD))
    body["widgets"][0]["definition"].update(change)
    status, payload = call(fake, "POST", "/api/v1/dashboard", body)
    assert status == 400
    assert any(e.startswith(error) for e in payload["errors"]), payload
    assert fake.state["dashboards"] == {}


def test_dashboard_tags_other_than_team_are_refused_as_datadog_does():
    status, payload = call(FakeDatadog(), "POST", "/api/v1/dashboard", dict(DASHBOARD, tags=["managed-by:x"]))
    assert status == 400 and "Valid tag keys are: team" in payload["errors"][0]


def test_monitor_search_by_name_and_tags_and_put_replaces_options():
    fake = FakeDatadog()
    status, monitor = call(fake, "POST", "/api/v1/monitor", MONITOR)
    assert status == 200 and isinstance(monitor["id"], int) and monitor["overall_state"] == "No Data"
    assert monitor["options"]["include_tags"] is True  # a server-side default
    assert parses_cleanly(monitor, Monitor)
    call(fake, "POST", "/api/v1/monitor", dict(MONITOR, name="Other", tags=[]))
    assert [m["name"] for m in call(fake, "GET", "/api/v1/monitor?name=m&monitor_tags=a:b")[1]] == ["M"]
    assert len(call(fake, "GET", "/api/v1/monitor?name=m")[1]) == 1
    update = {"query": MONITOR["query"], "options": {"thresholds": {"critical": 800}, "notify_audit": True}}
    status, updated = call(fake, "PUT", "/api/v1/monitor/%d" % monitor["id"], update)
    assert status == 200
    assert updated["options"]["thresholds"] == {"critical": 800}
    assert updated["options"]["notify_audit"] is True and updated["name"] == "M"


@pytest.mark.parametrize("body, error", [
    (dict(MONITOR, type="metric alertt"), "body.type: invalid value 'metric alertt'"),
    (dict(MONITOR, options={"thresholds": {"critical": "high"}}), "Invalid type for variable 'critical'"),
    (dict(MONITOR, options={"thresholds": {"critical": 900}}), "critical threshold (900.0) does not match"),
])
def test_bad_monitor_bodies_get_400(body, error):
    status, payload = call(FakeDatadog(), "POST", "/api/v1/monitor", body)
    assert status == 400 and error in payload["errors"][0], payload


def test_downtime_lifecycle_on_v2_with_cancel():
    fake = FakeDatadog()
    monitor_id = call(fake, "POST", "/api/v1/monitor", MONITOR)[1]["id"]
    status, created = call(fake, "POST", "/api/v2/downtime", downtime_body(monitor_id))
    assert status == 200 and parses_cleanly(created, DowntimeResponse)
    attributes = created["data"]["attributes"]
    # A recurrence sent without a start "starts the moment it is created" (Datadog's API reference).
    assert attributes["status"] == "active" and attributes["schedule"]["recurrences"][0]["start"]
    downtime_id = created["data"]["id"]
    patch = {"data": {"type": "downtime", "id": downtime_id, "attributes": {"message": "new"}}}
    status, patched = call(fake, "PATCH", "/api/v2/downtime/" + downtime_id, patch)
    assert status == 200 and patched["data"]["attributes"]["message"] == "new"
    assert call(fake, "DELETE", "/api/v2/downtime/" + downtime_id) == (204, None)
    status, listed = call(fake, "GET", "/api/v2/downtime?current_only=false")
    assert parses_cleanly(listed, ListDowntimesResponse)
    assert listed["data"][0]["attributes"]["status"] == "canceled"
    assert call(fake, "GET", "/api/v2/downtime?current_only=true")[1]["data"] == []


@pytest.mark.parametrize("attributes, error", [
    ({"monitor_identifier": {"monitor_id": 4242}}, "monitor 4242 does not exist"),
    ({"schedule": {"recurrences": [{"rrule": "DTSTART=x;FREQ=DAILY", "duration": "1h"}]}}, "DTSTART"),
    ({"schedule": {"recurrences": [{"rrule": "FREQ=DAILY", "duration": "1 hour"}]}}, "duration"),
])
def test_bad_downtimes_get_400(attributes, error):
    fake = FakeDatadog()
    monitor_id = call(fake, "POST", "/api/v1/monitor", MONITOR)[1]["id"]
    status, payload = call(fake, "POST", "/api/v2/downtime", downtime_body(monitor_id, **attributes))
    assert status == 400 and error in payload["errors"][0], payload


def test_injected_faults_answer_in_order_then_stop():
    fake = FakeDatadog()
    fake.inject(429, count=1, path="/api/v1/monitor", reset=7)
    fake.inject(500, count=1)
    reply = fake.handle("GET", "/api/v1/monitor", KEYS, b"")
    assert reply.status == 429 and reply.headers["X-RateLimit-Reset"] == "7"
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    assert fake.handle("GET", "/api/v1/monitor", KEYS, b"").status == 500
    assert fake.handle("GET", "/api/v1/monitor", KEYS, b"").status == 200
    assert [r["status"] for r in fake.requests] == [429, 500, 200]


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "state.json"
    fake = FakeDatadog(state_file=str(state))
    monitor_id = call(fake, "POST", "/api/v1/monitor", MONITOR)[1]["id"]
    again = FakeDatadog(state_file=str(state))
    assert call(again, "GET", "/api/v1/monitor/%d" % monitor_id)[1]["name"] == "M"
    assert call(again, "POST", "/api/v1/monitor", MONITOR)[1]["id"] == monitor_id + 1


def test_http_server_and_control_endpoints():
    server = start_fake()
    try:
        request = urllib.request.Request(server.url + "/api/v1/monitor", data=json.dumps(MONITOR).encode(),
                                         method="POST", headers=dict(KEYS, **{"Content-Type": "application/json"}))
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["name"] == "M"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + "/api/v1/monitor", timeout=10)
        assert refused.value.code == 403
        assert list(control(server, "GET", "/fake/state")["monitors"].values())[0]["name"] == "M"
        assert [(r["method"], r["status"]) for r in control(server, "GET", "/fake/requests")] == [
            ("POST", 200), ("GET", 403)]
        control(server, "POST", "/fake/reset")
        assert control(server, "GET", "/fake/state")["monitors"] == {}
    finally:
        server.stop()


def test_command_line_serves_on_loopback_and_keeps_state(tmp_path):
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/doubles/fake_datadog_api/server.py"), "--port", "0",
         "--state", str(state), "--api-key", "k1", "--app-key", "k2"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("fake-datadog-api listening on http://127.0.0.1:")
        url = line.split()[-1]
        request = urllib.request.Request(url + "/api/v1/monitor", data=json.dumps(MONITOR).encode(), method="POST",
                                         headers={"DD-API-KEY": "k1", "DD-APPLICATION-KEY": "k2"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        deadline = time.monotonic() + 5
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(json.loads(state.read_text())["monitors"].values())[0]["name"] == "M"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


# ---- Datadog's canonical forms (the cassettes are named in fake_datadog_api/app.py) ---------------


def _future(days=3, clock="19:00"):
    return (datetime.date.today() + datetime.timedelta(days=days)).isoformat() + "T" + clock


def _monitor_id(fake):
    status, monitor = call(fake, "POST", "/api/v1/monitor", MONITOR)
    assert status == 200, monitor
    return monitor["id"]


def _recurring(fake, start, **attributes):
    schedule = {"timezone": "Europe/Paris", "recurrences": [{"rrule": "FREQ=WEEKLY;BYDAY=FR", "duration": "49h",
                                                             "start": start}]}
    return call(fake, "POST", "/api/v2/downtime", downtime_body(_monitor_id(fake), schedule=schedule, **attributes))


def test_form_a_recurrence_start_comes_back_with_seconds():
    fake = FakeDatadog()
    status, payload = _recurring(fake, _future())
    assert status == 200, payload
    assert payload["data"]["attributes"]["schedule"]["recurrences"][0]["start"] == _future() + ":00"


def test_form_a_recurrence_start_in_the_past_is_refused():
    fake = FakeDatadog()
    status, payload = _recurring(fake, "2024-01-05T19:00")
    assert status == 400 and "is in the past" in payload["errors"][0], payload


def test_form_the_schedule_gains_the_current_downtime_in_utc():
    fake = FakeDatadog()
    _, payload = _recurring(fake, _future())
    current = payload["data"]["attributes"]["schedule"]["current_downtime"]
    assert current["start"].endswith("+00:00") and current["end"].endswith("+00:00")


def test_form_notify_end_states_come_back_in_datadogs_order_not_the_order_sent():
    fake = FakeDatadog()
    _, payload = _recurring(fake, _future(), notify_end_states=["alert", "warn"])
    assert payload["data"]["attributes"]["notify_end_states"] == ["warn", "alert"]


def test_form_defaults_added_notify_end_types_expired_and_the_three_end_states():
    fake = FakeDatadog()
    _, payload = _recurring(fake, _future())
    attributes = payload["data"]["attributes"]
    assert attributes["notify_end_types"] == ["expired"]
    assert sorted(attributes["notify_end_states"]) == ["alert", "no data", "warn"]
    assert attributes["mute_first_recovery_notification"] is False


def test_form_a_one_time_start_sent_with_z_comes_back_with_plus_00_00():
    fake = FakeDatadog()
    body = downtime_body(_monitor_id(fake), schedule={"start": "2050-01-02T03:04:05Z", "end": None})
    status, payload = call(fake, "POST", "/api/v2/downtime", body)
    assert status == 200, payload
    assert payload["data"]["attributes"]["schedule"]["start"] == "2050-01-02T03:04:05+00:00"


def test_form_monitor_thresholds_come_back_as_floats_with_option_defaults():
    fake = FakeDatadog()
    status, monitor = call(fake, "POST", "/api/v1/monitor", MONITOR)
    assert status == 200
    thresholds = monitor["options"]["thresholds"]
    assert thresholds == {"critical": 800.0, "warning": 500.0}
    assert all(isinstance(v, float) for v in thresholds.values())
    assert monitor["options"]["notify_audit"] is False and monitor["options"]["silenced"] == {}
    assert json.dumps(thresholds) == '{"critical": 800.0, "warning": 500.0}'


# ---- the fake's clock, and what "now" means to a downtime (issue 26) --------------------------------
# Datadog's API reference, "Get all downtimes" (GET /api/v2/downtime): current_only "Only return downtimes
# that are active when the request is made" (datadog-api-client's DowntimesApi.list_downtimes says the
# same; DataDog/datadogpy issue 757: future downtimes are not returned). Without it, every downtime is
# listed, canceled ones included. DowntimeStatus: active, canceled, ended, scheduled.

def _lab_downtimes(fake, timezone="America/New_York"):
    """The lab's two downtimes (roles/datadog_resources/templates/downtimes), made on Monday 2026-12-07
    at 08:00 in `timezone`, with the starts the role sends: that evening's 19:00 and Friday's."""
    fake.set_clock("2026-12-07T08:00:00" + _offset(timezone, "2026-12-07T08:00:00"))
    monitor_id = _monitor_id(fake)
    made = {}
    for name, rrule, start, duration in (("nights", "FREQ=WEEKLY;BYDAY=SU,MO,TU,WE,TH", "2026-12-07T19:00", "14h"),
                                         ("weekend", "FREQ=WEEKLY;BYDAY=FR", "2026-12-11T19:00", "49h")):
        schedule = {"timezone": timezone, "recurrences": [{"rrule": rrule, "duration": duration, "start": start}]}
        status, payload = call(fake, "POST", "/api/v2/downtime", downtime_body(monitor_id, schedule=schedule,
                                                                                message=name))
        assert status == 200, payload
        made[name] = payload["data"]["id"]
    return made


def _offset(timezone, local):
    return datetime.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(timezone)).strftime("%z")


def _listed(fake, query=""):
    status, payload = call(fake, "GET", "/api/v2/downtime" + query)
    assert status == 200 and parses_cleanly(payload, ListDowntimesResponse), payload
    return {d["attributes"]["message"]: d["attributes"] for d in payload["data"]}


@pytest.mark.parametrize("local, nights, weekend", [
    ("2026-12-08T11:00:00", "scheduled", "scheduled"),   # Tuesday, a working hour
    ("2026-12-08T23:30:00", "active", "scheduled"),      # Tuesday night
    ("2026-12-12T15:00:00", "scheduled", "active"),      # Saturday afternoon
    ("2026-12-14T08:30:00", "active", "scheduled"),      # Monday 08:30: Sunday night's downtime
])
def test_current_only_lists_only_the_downtimes_active_at_the_fakes_time(local, nights, weekend):
    fake = FakeDatadog()
    _lab_downtimes(fake)
    fake.set_clock(local + _offset("America/New_York", local))
    every = _listed(fake)
    assert {name: a["status"] for name, a in every.items()} == {"nights": nights, "weekend": weekend}
    current = _listed(fake, "?current_only=true")
    assert sorted(current) == sorted(name for name, status in (("nights", nights), ("weekend", weekend))
                                     if status == "active")
    assert sorted(_listed(fake, "?current_only=false")) == ["nights", "weekend"]


def test_current_downtime_is_the_period_in_progress_else_the_next_one_in_utc():
    fake = FakeDatadog()
    _lab_downtimes(fake)
    fake.set_clock("2026-12-08T11:00:00-05:00")
    nights = _listed(fake)["nights"]["schedule"]["current_downtime"]
    assert nights == {"start": "2026-12-09T00:00:00+00:00", "end": "2026-12-09T14:00:00+00:00"}
    fake.set_clock("2026-12-12T15:00:00-05:00")
    weekend = _listed(fake)["weekend"]["schedule"]["current_downtime"]
    assert weekend == {"start": "2026-12-12T00:00:00+00:00", "end": "2026-12-14T01:00:00+00:00"}


def test_without_current_only_canceled_and_ended_downtimes_are_listed_too():
    fake = FakeDatadog()
    made = _lab_downtimes(fake)
    assert call(fake, "DELETE", "/api/v2/downtime/" + made["weekend"]) == (204, None)
    ending = downtime_body(_monitor_id(fake), message="once", schedule={"start": None,
                                                                        "end": "2026-12-07T14:00:00Z"})
    assert call(fake, "POST", "/api/v2/downtime", ending)[0] == 200
    fake.set_clock("2026-12-12T15:00:00-05:00")
    assert {n: a["status"] for n, a in _listed(fake).items()} == {
        "nights": "scheduled", "weekend": "canceled", "once": "ended"}
    assert _listed(fake, "?current_only=true") == {}


def test_the_clock_is_set_and_put_back_through_its_control_endpoint():
    fake = FakeDatadog()
    status, clock = call(fake, "PUT", "/fake/clock", {"now": "2026-12-08T11:00:00-05:00"})
    assert status == 200 and clock["now"].startswith("2026-12-08T16:00:0"), clock
    _lab_downtimes(fake)   # sets the clock to that Monday morning, through the same state
    assert call(fake, "GET", "/fake/clock")[1]["now"].startswith("2026-12-07T13:00:0")
    assert call(fake, "PUT", "/fake/clock", {"now": "2026-12-08T11:00:00"})[0] == 400   # no offset
    status, clock = call(fake, "DELETE", "/fake/clock")
    assert status == 200 and clock["offset_seconds"] == 0.0
    assert abs(time.time() - datetime.datetime.fromisoformat(clock["now"]).timestamp()) < 5


def test_database_monitoring_metrics_become_query_metrics_as_datadog_derives_them():
    """A dbm-metrics event's postgres_rows become postgresql.queries.count, .time (ms to ns) and .rows, tagged
    query_signature, db and user; a row without its keys, or a body that isn't a list, gets a 400."""
    fake = FakeDatadog()
    now = time.time()
    event = {"host": "h1", "timestamp": now * 1000, "tags": ["env:unit"], "postgres_rows": [
        {"query_signature": "abc123", "query": "SELECT 1", "datname": "db1", "rolname": "u1", "calls": 3, "rows": 3,
         "total_exec_time": 2.5}]}
    assert fake.handle("POST", "/api/v2/dbmmetrics", KEYS, json.dumps([event]).encode()).status == 202
    window = "&from=%d&to=%d" % (now - 60, now + 60)
    for metric, value in (("count", 3), ("time", 2.5e6), ("rows", 3)):
        status, answer = call(fake, "GET", "/api/v1/query?query=sum:postgresql.queries.%s"
                              "{db:db1,user:u1,query_signature:abc123}%s" % (metric, window))
        assert status == 200, answer
        (serie,) = answer["series"]
        assert serie["pointlist"][0][1] == value, (metric, serie)
    bad_row = dict(event, postgres_rows=[{"query_signature": "abc123", "datname": "db1"}])
    for body in ([bad_row], {"not": "a list"}):
        reply = fake.handle("POST", "/api/v2/dbmmetrics", KEYS, json.dumps(body).encode())
        assert reply.status == 400, body
    assert fake.handle("POST", "/api/v2/databasequery", KEYS, json.dumps([{"dbm_type": "plan"}]).encode()).status == 202
    assert fake.handle("POST", "/api/v2/databasequery", KEYS, json.dumps([{}]).encode()).status == 400


def test_a_host_never_reports_later_than_its_data_arrived():
    """A trace-stats bucket is stamped with its end, up to 10 s ahead of the flush: the host reported when the intake
    received it, not then (else a stopped agent would still look alive for those seconds)."""
    fake = FakeDatadog()
    now = time.time()
    start = int(now) * 10 ** 9
    stats = {"AgentHostname": "h2", "AgentEnv": "unit", "Stats": [{"Hostname": "h2", "Env": "unit", "Stats": [
        {"Start": start, "Duration": 10 * 10 ** 9, "Stats": [{"Service": "s", "Name": "flask.request", "Resource": "GET /",
                                                             "Hits": 1, "Errors": 0, "Duration": 1000}]}]}]}
    assert fake.handle("POST", "/api/v0.2/stats", KEYS, json.dumps(stats).encode()).status == 202
    status, answer = call(fake, "GET", "/api/v1/hosts?filter=h2&from=%d" % (now + 5))
    assert status == 200 and answer["host_list"] == [], answer
    status, answer = call(fake, "GET", "/api/v1/hosts?filter=h2&from=%d" % (now - 5))
    assert [h["name"] for h in answer["host_list"]] == ["h2"]
