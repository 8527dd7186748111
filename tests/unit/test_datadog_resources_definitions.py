"""The role's offline checks (module_utils schema + definitions): shipped files valid, bad ones named by path."""

import copy
import re

import pytest
import yaml
from ansible.module_utils.datadog_resources import definitions
from datadog_resources_support import ROLE

VALUES = {"datadog_resources_host": "host-a", "datadog_resources_service": "svc", "datadog_resources_env": "env-a",
          "datadog_resources_database": "db", "datadog_resources_table": "tbl",
          "datadog_resources_notify_handle": "@someone", "datadog_resources_my_metric_critical": 800,
          "datadog_resources_my_metric_warning": 500, "datadog_resources_downtime_timezone": "Europe/Paris"}


def shipped(kind):
    """The role's definition files of one kind, with ${ } filled in (as the role's template lookup does)."""
    files = sorted((ROLE / "templates" / kind).glob("*.yml"))
    assert files
    return [yaml.safe_load(re.sub(r"\$\{ *(\w+) *\}", lambda m: str(VALUES[m.group(1)]), f.read_text()))
            for f in files]


def check(dashboards=(), monitors=(), downtimes=(), managed_by="lab"):
    return definitions.check_definitions(list(dashboards), list(monitors), list(downtimes), managed_by)


def test_shipped_definitions_are_valid():
    assert check(shipped("dashboards"), shipped("monitors"), shipped("downtimes")) == []


def test_shipped_definitions_carry_the_seed_content():
    boards = {d["title"]: d for d in shipped("dashboards")}
    timeboard, board = boards["Datadog lab - API timeboard"], boards["Datadog lab - APM and Infrastructure"]
    queries = [r["q"] for w in timeboard["widgets"] for r in w["definition"]["requests"]]
    assert queries[:3] == ["max:my_metric{host:host-a}",
                           "anomalies(max:postgresql.heap_blocks_read{host:host-a}, 'basic', 2)",
                           "max:my_metric{host:host-a}.rollup(sum, 3600)"]
    assert timeboard["widgets"][2]["definition"]["requests"][0]["display_type"] == "bars"
    assert timeboard["widgets"][3]["definition"]["requests"][0]["aggregator"] == "last"
    assert "postgresql.table.count" in queries[3]
    text = str(board)
    for metric in ("postgresql.live_rows", "postgresql.dead_rows", "postgresql.table.count",
                   "postgresql.heap_blocks_read", "postgresql.heap_blocks_hit", "postgresql.rows_inserted",
                   "postgresql.rows_deleted", "system.cpu", "trace.flask.request.hits{service:svc,env:env-a}",
                   "trace.flask.request.duration{service:svc,env:env-a}", ".rollup(sum, 3600)"):
        assert metric in text, metric
    assert board["layout_type"] == "free" and all("layout" in w for w in board["widgets"])
    (monitor,) = shipped("monitors")
    assert monitor["query"] == "max(last_5m):max:my_metric{host:host-a} > 800"
    assert monitor["options"]["thresholds"] == {"critical": 800, "warning": 500}
    assert monitor["options"]["notify_no_data"] is True and monitor["options"]["no_data_timeframe"] == 10
    assert monitor["options"]["require_full_window"] is True
    for part in ("{{#is_alert}}", "{{#is_warning}}", "{{#is_no_data}}", "{{value}}", "@someone"):
        assert part in monitor["message"]
    rules = {d["name"]: d["attributes"]["schedule"] for d in shipped("downtimes")}
    assert rules["Weekday nights"]["recurrences"][0]["rrule"] == "FREQ=WEEKLY;BYDAY=SU,MO,TU,WE,TH"
    assert rules["Weekday nights"]["recurrences"][0]["start"] == "19:00"
    assert rules["Weekday nights"]["recurrences"][0]["duration"] == "14h"
    assert rules["Weekend"]["recurrences"][0]["rrule"] == "FREQ=WEEKLY;BYDAY=FR"
    assert all(s["timezone"] == "Europe/Paris" for s in rules.values())


def bad_dashboard(path, value):
    dashboards = shipped("dashboards")
    target = dashboards[0]
    *parents, last = path
    for key in parents:
        target = target[key]
    target[last] = value
    return dashboards


@pytest.mark.parametrize("path, value, expected", [
    (("widgets", 0, "definition", "type"), "timeseriez",
     'widgets[0].definition.type: unknown type "timeseriez" (WidgetDefinition accepts: alert_graph'),
    (("widgets", 3, "definition", "requests", 0, "aggregator"), "latest",
     'widgets[3].definition.requests[0].aggregator: "latest" is not allowed (WidgetAggregator accepts: avg, last'),
    (("widgets", 0, "definition", "requests", 0, "q"), 42, "widgets[0].definition.requests[0].q: expected a string"),
    (("widgets", 0, "definition", "legend"), True, "widgets[0].definition.legend: unknown field"),
    (("layout_type",), "grid", 'layout_type: "grid" is not allowed'),
    (("id",), "abc-def-ghi", "id: set by Datadog (read-only)"),
    (("tags",), ["env:lab"], "tags: 'env:lab': Datadog accepts only team: tags"),
])
def test_bad_dashboard_fields_are_named_by_path(path, value, expected):
    problems = check(bad_dashboard(path, value))
    assert any(p.startswith("dashboards[0]: " + expected) for p in problems), problems


def test_missing_required_fields_and_wrong_shapes_are_named():
    dashboards = shipped("dashboards")
    del dashboards[1]["widgets"][0]["layout"]["width"]
    del dashboards[0]["layout_type"]
    problems = check(dashboards)
    assert "dashboards[0]: layout_type: required by Dashboard, missing" in problems
    assert "dashboards[1]: widgets[0].layout.width: required by WidgetLayout, missing" in problems
    assert check(["not a mapping"]) == ["dashboards[0]: expected a mapping, got str"]


def test_monitor_problems():
    (monitor,) = shipped("monitors")
    wrong = copy.deepcopy(monitor)
    wrong["type"] = "metric alarm"
    wrong["options"]["thresholds"]["warning"] = "five hundred"
    problems = check(monitors=[wrong])
    assert any(p.startswith('monitors[0]: type: "metric alarm" is not allowed') for p in problems), problems
    assert any(p.startswith("monitors[0]: options.thresholds.warning: expected a number") for p in problems)
    assert check(monitors=[monitor, monitor]) == [
        "monitors[1]: another definition has the same name %r" % monitor["name"]]


def test_downtime_problems():
    monitors = shipped("monitors")
    weekday = shipped("downtimes")[0]
    assert check(monitors=monitors, downtimes=[dict(weekday, monitor="nope")]) == [
        "downtimes[0]: monitor: 'nope' is not the name of any monitor definition"]
    broken = copy.deepcopy(weekday)
    broken["attributes"]["schedule"]["recurrences"][0].update(
        rrule="DTSTART:20240101T190000;FREQ=DAILY", duration="14 hours", start="2024-01-01T19:00Z")
    broken["colour"] = "red"
    broken["attributes"]["display_timezone"] = "Mars/Olympus_Mons"
    problems = check(monitors=monitors, downtimes=[broken])
    for expected in ("colour: unknown key", "recurrences[0].rrule: Datadog refuses DTSTART",
                     "recurrences[0].duration: an integer followed by", "recurrences[0].start: no UTC offset",
                     "attributes.display_timezone: 'Mars/Olympus_Mons' is not an IANA timezone"):
        assert any(expected in p for p in problems), (expected, problems)
    del broken["attributes"]["scope"]
    assert "downtimes[0]: attributes.scope: required by DowntimeCreateRequestAttributes, missing" in check(
        monitors=monitors, downtimes=[broken])


def test_labels_name_the_file_and_managed_by_must_be_a_tag():
    problems = definitions.check_definitions(bad_dashboard(("layout_type",), "grid"), [], [], "lab",
                                             {"dashboards": ["dashboards/api_timeboard.yml"]})
    assert problems[0].startswith("dashboards/api_timeboard.yml (dashboards[0]): layout_type:")
    assert "becomes a tag" in check(managed_by="Not A Tag")[0]


def test_marks_on_the_bodies():
    (dashboard,) = shipped("dashboards")[:1]
    body = definitions.dashboard_body(dashboard, "lab")
    assert body["description"].endswith("\n\n[managed-by:lab]") and "managed-by" not in dashboard["description"]
    (monitor,) = shipped("monitors")
    assert definitions.monitor_body(monitor, "lab")["tags"] == ["managed-by:lab"]
    attributes = definitions.downtime_attributes(shipped("downtimes")[1], "lab", 77)
    assert attributes["monitor_identifier"] == {"monitor_id": 77}
    assert attributes["message"].endswith("[managed-by:lab downtime:Weekend]")
