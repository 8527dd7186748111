"""The role's API code (module_utils client + sync, and the module) against the fake Datadog API in-process."""

import json

import datadog_resources_apply
import pytest
from ansible.module_utils.datadog_resources import definitions, sync
from ansible.module_utils.datadog_resources.client import DatadogClient, DatadogError
from ansible.module_utils.datadog_resources.sync import Sync, differences
from ansible.module_utils.testing import patch_module_args
from datadog_resources_support import DEFAULT_API_KEY, DEFAULT_APP_KEY, start_fake

DASHBOARD = {"title": "Board", "layout_type": "ordered", "description": "mine",
             "widgets": [{"definition": {"type": "timeseries", "title": "W", "requests": [{"q": "avg:m{*}"}]}}]}
MONITOR = {"name": "High", "type": "metric alert", "query": "max(last_5m):max:m{*} > 800", "message": "hi",
           "tags": ["team:lab"], "options": {"thresholds": {"critical": 800, "warning": 500}, "notify_no_data": True}}
DOWNTIME = {"name": "Nights", "monitor": "High", "attributes": {
    "scope": "*", "message": "night", "schedule": {"timezone": "UTC", "recurrences": [
        {"rrule": "FREQ=WEEKLY;BYDAY=MO", "start": "2024-01-01T19:00", "duration": "14h"}]}}}


class Clock:
    """A clock that moves only when the client sleeps: retry timing without waiting."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server():
    fake_server = start_fake()
    yield fake_server
    fake_server.stop()


def client_for(server, api_key=DEFAULT_API_KEY, app_key=DEFAULT_APP_KEY, clock=None, **kwargs):
    clock = clock or Clock()
    return DatadogClient(server.url, api_key, app_key, sleep=clock.sleep, clock=clock, **kwargs)


def run(server, state="present", check_mode=False, dashboards=(DASHBOARD,), monitors=(MONITOR,),
        downtimes=(DOWNTIME,)):
    client = client_for(server)
    try:
        return Sync(client, "lab", check_mode).run(state, list(dashboards), list(monitors), list(downtimes))
    finally:
        client.close()


def writes(server):
    return [(r["method"], r["path"]) for r in server.fake.requests if r["method"] != "GET"]


# ---- comparison -----------------------------------------------------------------------------


def test_differences_ignore_server_fields_and_number_types_but_not_values():
    desired = {"a": 1, "l": [{"x": 1}], "tags": ["b", "a"], "empty": [], "flag": True}
    current = {"a": 1.0, "l": [{"x": 1, "id": 9}], "tags": ["a", "b"], "extra": 3, "flag": True}
    assert differences(desired, current) == []
    assert differences({"flag": True}, {"flag": 1}) == [("flag", 1, True)]
    assert differences({"l": [1, 2]}, {"l": [2, 1]}) == [("l[0]", 2, 1), ("l[1]", 1, 2)]
    assert differences({"l": [1, 2]}, {"l": [3]}) == [("l[0]", 3, 1), ("len(l)", 1, 2)]
    assert differences({"l": [1]}, {"l": "x"}) == [("l", "x", [1])]
    assert differences({"tags": ["a"]}, {"tags": ["a", "b"]}) == [("tags", ["a", "b"], ["a"])]
    assert differences({"o": {"t": {"w": 500}}}, {"o": {"t": {"w": 600, "c": 800}}}) == [("o.t.w", 600, 500)]


# ---- reconciling ------------------------------------------------------------------------------


def test_first_run_creates_then_second_run_writes_nothing(server):
    results = run(server)
    assert [(r["kind"], r["action"]) for r in results] == [("monitor", "create"), ("dashboard", "create"),
                                                           ("downtime", "create")]
    state = server.fake.state
    (monitor,) = state["monitors"].values()
    assert "managed-by:lab" in monitor["tags"]
    (downtime,) = state["downtimes"].values()
    assert downtime["attributes"]["monitor_identifier"] == {"monitor_id": monitor["id"]}
    server.fake.requests.clear()
    assert all(r["action"] == "none" for r in run(server))
    assert writes(server) == []


def test_only_what_differs_is_updated_and_reported(server):
    run(server)
    server.fake.requests.clear()
    changed = dict(MONITOR, options=dict(MONITOR["options"], thresholds={"critical": 800, "warning": 600}))
    results = run(server, monitors=[changed])
    assert [r["action"] for r in results] == ["update", "none", "none"]
    assert results[0]["changes"] == [{"path": "options.thresholds.warning", "before": 500, "after": 600}]
    (monitor_id,) = server.fake.state["monitors"]
    assert writes(server) == [("PUT", "/api/v1/monitor/" + monitor_id)]
    report = sync.report(results, check_mode=True)
    assert report == ["would update monitor 'High' (id %s)" % monitor_id, "  options.thresholds.warning: 500 -> 600"]
    long_before, long_after = "x" * 100 + " threshold of 500, then more text", "x" * 100 + " threshold of 600, then more"
    (line,) = sync.report([dict(results[0], changes=[
        {"path": "message", "before": long_before, "after": long_after}])], check_mode=False)[1:]
    assert line == '  message: ..."xxxxxx threshold of 500, then more text" -> ..."xxxxxx threshold of 600, then more"'


def test_check_mode_writes_nothing_on_a_fresh_or_a_drifted_server(server):
    results = run(server, check_mode=True)
    assert [r["action"] for r in results] == ["create"] * 3 and writes(server) == []
    run(server)
    server.fake.requests.clear()
    results = run(server, check_mode=True, dashboards=[dict(DASHBOARD, title="Board", widgets=[])])
    assert [r["action"] for r in results] == ["none", "update", "none"] and writes(server) == []


def test_duplicates_and_unmanaged_lookalikes(server):
    run(server)
    fake = server.fake
    (dashboard,) = fake.state["dashboards"].values()
    copy = dict(dashboard, id="dup-dup-dup", created_at="9999")
    fake.state["dashboards"]["dup-dup-dup"] = copy
    fake.state["dashboards"]["not-ours-x"] = dict(dashboard, id="not-ours-x", description="by hand")
    results = run(server)
    assert results[1]["removed_duplicates"] == ["dup-dup-dup"]
    assert set(fake.state["dashboards"]) == {dashboard["id"], "not-ours-x"}
    results = run(server, state="absent")
    assert [r["action"] for r in results] == ["delete"] * 3
    assert list(fake.state["dashboards"]) == ["not-ours-x"] and fake.state["monitors"] == {}
    assert [d["attributes"]["status"] for d in fake.state["downtimes"].values()] == ["canceled"]
    assert all(r["action"] == "none" for r in run(server, state="absent"))


# ---- retries and errors -----------------------------------------------------------------------


def test_429_waits_for_the_rate_limit_reset_then_succeeds(server):
    server.fake.inject(429, count=2, reset=3)
    clock = Clock()
    client = client_for(server, clock=clock, retry_backoff=0.5)
    assert client.call("GET /api/v1/monitor", client.monitors.list_monitors) == []
    assert clock.sleeps == [3.0, 3.0] and client.attempts == 3


def test_5xx_backs_off_exponentially_and_gives_up_within_the_bound(server):
    server.fake.inject(500)
    clock = Clock()
    client = client_for(server, clock=clock, retry_backoff=1, retry_timeout=10)
    with pytest.raises(DatadogError) as failure:
        client.call("GET /api/v1/monitor", client.monitors.list_monitors)
    assert clock.sleeps == [1, 2, 4] and clock.now <= 10
    message = str(failure.value)
    assert "4 attempts" in message and "HTTP 500" in message and "datadog_resources_retry_timeout (10 s)" in message
    assert len(server.fake.requests) == 4


def test_a_refused_connection_is_retried_then_reported(server):
    url = server.url
    server.stop()
    clock = Clock()
    client = DatadogClient(url, "k", "a", retry_timeout=3, retry_backoff=1, sleep=clock.sleep, clock=clock)
    with pytest.raises(DatadogError, match="no answer"):
        client.call("GET /api/v1/monitor", client.monitors.list_monitors)
    assert clock.sleeps == [1, 2]


@pytest.mark.parametrize("api_key, app_key, expected, not_expected, validate_status", [
    ("wrong-api-key-value", DEFAULT_APP_KEY, "refused the API key", "DD_APP_KEY", 403),
    (DEFAULT_API_KEY, "wrong-app-key-value", "although the API key is valid: check the application key",
     "DD_API_KEY", 200),
])
def test_403_says_which_key_to_check(server, api_key, app_key, expected, not_expected, validate_status):
    client = client_for(server, api_key=api_key, app_key=app_key)
    with pytest.raises(DatadogError) as failure:
        client.call("GET /api/v1/monitor", client.monitors.list_monitors)
    message = str(failure.value)
    assert expected in message and not_expected not in message
    assert api_key not in message and app_key not in message
    assert [(r["path"], r["status"]) for r in server.fake.requests] == [
        ("/api/v1/monitor", 403), ("/api/v1/validate", validate_status)]


def test_a_400_is_not_retried_and_quotes_datadog(server):
    client = client_for(server)
    with pytest.raises(DatadogError, match="answered 400 .*unknown type 'nope'"):
        client.call("POST /api/v1/dashboard", client.dashboards.create_dashboard,
                    {"title": "t", "layout_type": "ordered", "widgets": [{"definition": {"type": "nope"}}]})
    assert len(server.fake.requests) == 1


# ---- the module ----------------------------------------------------------------------------------


def run_module(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        datadog_resources_apply.main()
    return json.loads(capsys.readouterr().out)


def test_apply_module_refuses_bad_definitions_before_any_request(server, capsys):
    bad = dict(DASHBOARD, widgets=[{"definition": {"type": "timeserie", "requests": [{"q": "x"}]}}])
    result = run_module({"api_url": server.url, "api_key": DEFAULT_API_KEY, "app_key": DEFAULT_APP_KEY,
                         "managed_by": "lab", "dashboards": [bad], "monitors": [MONITOR],
                         "labels": {"dashboards": ["my/board.yml"]}}, capsys)
    assert result["failed"] and "nothing was sent" in result["msg"]
    assert 'my/board.yml (dashboards[0]): widgets[0].definition.type: unknown type "timeserie"' in result["msg"]
    assert server.fake.requests == []


def test_apply_module_masks_keys_and_checks_before_any_request(server, capsys):
    args = {"api_url": server.url, "api_key": DEFAULT_API_KEY, "app_key": DEFAULT_APP_KEY, "managed_by": "lab",
            "dashboards": [DASHBOARD], "monitors": [MONITOR], "downtimes": [DOWNTIME]}
    result = run_module(args, capsys, check_mode=True)
    assert result["changed"] and result["report"][0] == "would create monitor 'High'"
    assert server.fake.state["monitors"] == {}
    result = run_module(dict(args, app_key=""), capsys)
    assert result["failed"] and "No Datadog application key: set DD_APP_KEY" in result["msg"]
    result = run_module(dict(args, app_key="bad-app-key-value-123"), capsys)
    assert "check the application key" in result["msg"]
    output = json.dumps(result)
    assert DEFAULT_API_KEY not in output and "bad-app-key-value-123" not in output
    requests_before = len(server.fake.requests)
    result = run_module(dict(args, monitors=[dict(MONITOR, type="metric")]), capsys)
    assert result["failed"] and 'type: "metric" is not allowed' in result["msg"]
    assert len(server.fake.requests) == requests_before


# ---- Datadog's canonical forms compared by value ----------------------------------------------------


def test_datetimes_compare_by_value():
    assert differences({"start": "2030-01-07T19:00"}, {"start": "2030-01-07T19:00:00"}) == []
    assert differences({"start": "2050-01-02T03:04:05Z"}, {"start": "2050-01-02T03:04:05+00:00"}) == []
    assert differences({"start": "2030-01-07T19:00"}, {"start": "2030-01-07T19:01:00"}) != []


def test_numbers_compare_as_numbers_and_sets_as_sets():
    assert differences({"o": {"critical": 800}}, {"o": {"critical": 800.0}}) == []
    assert differences({"notify_end_states": ["alert", "warn"]}, {"notify_end_states": ["warn", "alert"]}) == []
    assert differences({"notify_end_types": ["expired"]}, {"notify_end_types": ["canceled"]}) != []


def test_a_default_datadog_adds_equals_leaving_it_out():
    for key, value in (("display_timezone", "UTC"), ("mute_first_recovery_notification", False),
                       ("notify_end_types", ["expired"]), ("notify_end_states", ["warn", "alert", "no data"])):
        assert differences({key: value}, {}) == [], key
    assert differences({"display_timezone": "Europe/Paris"}, {}) != []


def test_a_recurrence_start_on_the_same_series_is_the_same_start():
    same_cadence = definitions.same_cadence
    rule = "FREQ=WEEKLY;BYDAY=SU,MO,TU,WE,TH"
    assert same_cadence(rule, "2030-01-06T19:00:00", "2030-02-04T19:00:00")  # a Sunday, a Monday weeks later
    assert not same_cadence(rule, "2030-01-06T19:00:00", "2030-02-04T20:00:00")  # another hour
    assert not same_cadence(rule, "2030-01-06T19:00:00", "2030-02-08T19:00:00")  # a Friday: not in the rule


def test_the_start_sent_is_the_next_occurrence_in_the_schedules_timezone():
    import datetime
    nxt = definitions.next_recurrence_start
    monday_noon = datetime.datetime(2030, 1, 7, 12, 0)
    assert nxt("FREQ=WEEKLY;BYDAY=FR", "19:00", "Europe/Paris", now=monday_noon) == "2030-01-11T19:00:00"
    assert nxt("FREQ=WEEKLY;BYDAY=MO", "19:00", "UTC", now=monday_noon) == "2030-01-07T19:00:00"
    assert nxt("FREQ=WEEKLY;BYDAY=MO", "2024-01-01T19:00", "UTC", now=monday_noon) == "2030-01-07T19:00:00"
    assert nxt("FREQ=WEEKLY;BYDAY=MO", "2031-01-06T19:00", "UTC", now=monday_noon) == "2031-01-06T19:00:00"


def test_a_second_run_against_datadogs_forms_writes_nothing(server):
    """The fake answers as Datadog does (start with seconds, floats, reordered states): nothing to rewrite."""
    downtime = {"name": "Nights", "monitor": "High", "attributes": {
        "scope": "*", "message": "night", "display_timezone": "UTC", "notify_end_states": ["alert", "warn"],
        "schedule": {"timezone": "Europe/Paris", "recurrences": [
            {"rrule": "FREQ=WEEKLY;BYDAY=SU,MO,TU,WE,TH", "start": "19:00", "duration": "14h"}]}}}
    run(server, downtimes=[downtime])
    (stored,) = server.fake.state["downtimes"].values()
    assert stored["attributes"]["schedule"]["recurrences"][0]["start"].endswith("T19:00:00")
    server.fake.requests.clear()
    assert [r["action"] for r in run(server, downtimes=[downtime])] == ["none", "none", "none"]
    assert writes(server) == []
