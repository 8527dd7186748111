"""playbooks/resources.yml end to end: ansible-playbook against the fake Datadog API on 127.0.0.1.

Each scenario below is a playbook run on its own fake API, either empty ("fresh") or holding what
the first converge left ("converged"), followed by the test that checks it. The runs are slow
(ansible-playbook starts each time), so they all go first, two at a time, and the tests then read
their outcomes: the run, the fake server (state and request log) and the state before the run.
"""

import copy
import json
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from datadog_resources_support import ROLE, ROOT, control, start_fake
from lab_ansible import ANSIBLE_PLAYBOOK

# Long and distinctive, so that any leak of a key (or of a piece of it) is unmistakable.
API_KEY = "apikey-" + "7f3c9a1e5b" * 3
APP_KEY = "appkey-" + "e2d4f6a8c0" * 4
WRONG_APP_KEY = "appkey-" + "e2d4f6a8c0" * 2 + "-wrong"
LAB = yaml.safe_load((ROOT / "inventory/group_vars/all/lab.yml").read_text())
MAPPED = yaml.safe_load((ROOT / "inventory/group_vars/all/datadog_resources.yml").read_text())
RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
PARALLEL_RUNS = 2
SCENARIOS = {}


class Run:
    def __init__(self, process, elapsed, before):
        self.before = before  # the fake's state when the run started
        self.rc = process.returncode
        self.out = process.stdout + process.stderr
        # The output unfolded: YAML wraps long strings over several lines and doubles single quotes.
        self.flat = re.sub(r"\s*\n\s*", " ", self.out).replace("''", "'")
        self.elapsed = elapsed
        recap = RECAP.search(self.out)
        self.changed = int(recap.group(2)) if recap else None
        self.failed = int(recap.group(4)) if recap else None

    def __repr__(self):
        return "rc=%s changed=%s failed=%s\n%s" % (self.rc, self.changed, self.failed, self.out[-6000:])


class Outcome:
    def __init__(self, run, server):
        self.run, self.server, self.before = run, server, run.before
        self.state = server.fake.state
        self.requests = server.fake.requests

    def writes(self):
        return [(r["method"], r["path"]) for r in self.requests if r["method"] != "GET"]


def playbook(server, *args, env=None):
    environment = dict(os.environ, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                       ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONDONTWRITEBYTECODE="1")
    environment["PATH"] = "%s:%s" % (Path(ANSIBLE_PLAYBOOK).parent, environment.get("PATH", ""))
    environment.update(env or {})
    command = [ANSIBLE_PLAYBOOK, "playbooks/resources.yml",
               "-e", "datadog_api_url=%s" % server.url, "-e", "datadog_resources_retry_backoff=0.2", *args]
    before = copy.deepcopy(server.fake.state)
    started = time.monotonic()
    process = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    return Run(process, time.monotonic() - started, before)


def scenario(start):
    """Register `function(server) -> Run` as the scenario of the same name, on a fresh or converged fake API."""
    def register(function):
        SCENARIOS[function.__name__] = (start, function)
        return function
    return register


def _play(function, state):
    server = start_fake(api_key=API_KEY, app_key=APP_KEY)
    try:
        if state:
            server.fake.state = copy.deepcopy(state)
        return Outcome(function(server), server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def outcomes():
    """Every scenario's outcome by name; the first converge (at -vvv --diff) comes first, as "converge"."""
    results = {}
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        converge = pool.submit(_play, lambda server: playbook(server, "-vvv", "--diff"), None)
        futures = {name: pool.submit(_play, function, None)
                   for name, (start, function) in SCENARIOS.items() if start == "fresh"}
        results["converge"] = converge.result()
        converged_state = results["converge"].state
        futures.update({name: pool.submit(_play, function, converged_state)
                        for name, (start, function) in SCENARIOS.items() if start == "converged"})
        for name, future in futures.items():
            results[name] = future.result()
    return results


HIDDEN = "the output has been hidden"


def keys_leaked(text):
    return [piece for piece in (API_KEY, APP_KEY, WRONG_APP_KEY, "7f3c9a1e5b", "e2d4f6a8c0") if piece in text]


def the_monitor(state):
    (monitor,) = state["monitors"].values()
    return monitor


# ---- the first converge --------------------------------------------------------------------


def test_first_converge_creates_three_dashboards_a_monitor_and_two_downtimes(outcomes):
    converge = outcomes["converge"]
    run, state = converge.run, converge.state
    assert run.rc == 0 and run.changed == 1 and run.failed == 0, run
    dashboards = sorted(state["dashboards"].values(), key=lambda d: d["layout_type"])
    assert [d["layout_type"] for d in dashboards] == ["free", "ordered", "ordered"]
    assert [len(d["widgets"]) for d in dashboards] == [9, 4, 7]
    assert all("[managed-by:ansible-datadog-resources]" in d["description"] for d in dashboards)
    monitor = the_monitor(state)
    assert monitor["query"] == "max(last_5m):max:my_metric{host:%s} > 800" % LAB["lab_hostname"]
    assert monitor["options"]["thresholds"] == {"critical": 800, "warning": 500}
    assert "managed-by:ansible-datadog-resources" in monitor["tags"]
    assert MAPPED["datadog_resources_notify_handle"] in monitor["message"]
    downtimes = list(state["downtimes"].values())
    assert len(downtimes) == 2
    assert all(d["attributes"]["monitor_identifier"] == {"monitor_id": monitor["id"]} for d in downtimes)
    assert sorted(d["attributes"]["schedule"]["recurrences"][0]["rrule"] for d in downtimes) == [
        "FREQ=WEEKLY;BYDAY=FR", "FREQ=WEEKLY;BYDAY=SU,MO,TU,WE,TH"]
    flask = [r["q"] for w in dashboards[0]["widgets"] for r in w["definition"]["requests"] if "flask" in r["q"]]
    assert all("service:%s,env:%s" % (LAB["lab_service"], LAB["lab_env"]) in q for q in flask) and len(flask) == 2
    (database,) = [d for d in dashboards if d["title"] == "Datadog lab - Database"]
    queries = [r["q"] for w in database["widgets"] for r in w["definition"]["requests"]]
    scope = "{host:%s,db:%s}" % (LAB["lab_hostname"], LAB["lab_database"])
    for metric in ("postgresql.queries.count", "postgresql.queries.time", "postgresql.queries.rows"):
        assert "sum:%s%s by {query_signature}.as_count()" % (metric, scope) in queries, queries
    assert any("postgresql.live_rows{host:%s,table:%s}" % (LAB["lab_hostname"], LAB["lab_table"]) in q for q in queries)
    assert "p95:trace.postgres.query{service:%s,env:%s}" % (LAB["lab_service"], LAB["lab_env"]) in queries
    assert sorted(path for method, path in converge.writes()) == [
        "/api/v1/dashboard", "/api/v1/dashboard", "/api/v1/dashboard", "/api/v1/monitor", "/api/v2/downtime",
        "/api/v2/downtime"]
    assert "create downtime 'Weekend'" in run.flat


def test_a_run_at_vvv_never_prints_either_key(outcomes):
    run = outcomes["converge"].run
    assert "ESTABLISH LOCAL CONNECTION" in run.out, "not a -vvv run"
    version = os.environ.get("LAB_EXPECT_ANSIBLE_CORE")  # the lane under test, when told
    assert not version or "ansible-playbook [core %s" % version in run.out
    assert keys_leaked(run.out) == []


# ---- from a converged Datadog ------------------------------------------------------------------


@scenario("converged")
def second_converge(server):
    return playbook(server)


def test_second_converge_changes_nothing(outcomes):
    outcome = outcomes["second_converge"]
    assert outcome.run.rc == 0 and outcome.run.changed == 0, outcome.run
    assert outcome.writes() == []


@scenario("converged")
def threshold_change(server):
    return playbook(server, "-e", "datadog_resources_my_metric_critical=900")


def test_changing_one_threshold_updates_only_the_monitor(outcomes):
    outcome = outcomes["threshold_change"]
    assert outcome.run.rc == 0 and outcome.run.changed == 1, outcome.run
    monitor = the_monitor(outcome.state)
    assert outcome.writes() == [("PUT", "/api/v1/monitor/%d" % monitor["id"])]
    assert monitor["options"]["thresholds"]["critical"] == 900 and monitor["query"].endswith("> 900")
    assert outcome.state["dashboards"] == outcome.before["dashboards"]
    assert outcome.state["downtimes"] == outcome.before["downtimes"]


def timeboard_id(state):
    (board,) = [d["id"] for d in state["dashboards"].values() if d["title"].endswith("API timeboard")]
    return board


@scenario("converged")
def hand_edit(server):
    edited = server.fake.state["dashboards"][timeboard_id(server.fake.state)]
    edited["widgets"][0]["definition"]["title"] = "Renamed in the UI"
    del edited["widgets"][3]
    return playbook(server)


def test_a_dashboard_edited_by_hand_is_put_back(outcomes):
    outcome = outcomes["hand_edit"]
    assert outcome.run.rc == 0 and outcome.run.changed == 1, outcome.run
    board = timeboard_id(outcome.state)
    assert outcome.writes() == [("PUT", "/api/v1/dashboard/" + board)]
    original = outcome.before["dashboards"][board]
    assert original["widgets"][0]["definition"]["title"] == "Renamed in the UI"  # the edit was there
    put_back = outcome.state["dashboards"][board]["widgets"]
    assert len(put_back) == 4 and put_back[0]["definition"]["title"] == "Custom Metric Over Host"
    assert 'widgets[0].definition.title: "Renamed in the UI" -> "Custom Metric Over Host"' in outcome.run.flat
    assert "len(widgets): 3 -> 4" in outcome.run.flat


@scenario("converged")
def absent(server):
    lookalike_title = next(iter(server.fake.state["dashboards"].values()))["title"]
    headers = {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY}
    for body in ({"title": lookalike_title, "layout_type": "ordered", "widgets": [], "description": "by hand"},
                 {"title": "Someone else's board", "layout_type": "free", "widgets": []}):
        assert server.fake.handle("POST", "/api/v1/dashboard", headers, json.dumps(body).encode()).status == 200
    return playbook(server, "-e", "datadog_resources_state=absent")


def test_absent_removes_what_the_role_made_and_leaves_the_rest(outcomes):
    outcome = outcomes["absent"]
    assert outcome.run.rc == 0 and outcome.run.changed == 1, outcome.run
    others = set(outcome.before["dashboards"]) - set(outcomes["converge"].state["dashboards"])
    assert len(others) == 2 and set(outcome.state["dashboards"]) == others
    assert outcome.state["monitors"] == {}
    assert [d["attributes"]["status"] for d in outcome.state["downtimes"].values()] == ["canceled", "canceled"]


@scenario("converged")
def check_mode_converged(server):
    return playbook(server, "--check", "--diff", "-e", "datadog_resources_my_metric_warning=600")


def test_check_mode_on_a_converged_datadog_shows_the_change_and_writes_nothing(outcomes):
    outcome = outcomes["check_mode_converged"]
    assert outcome.run.rc == 0 and outcome.run.changed == 1, outcome.run
    assert re.search(r"would update monitor 'my_metric is high on [^']+' \(id \d+\)", outcome.run.flat), outcome.run
    assert "options.thresholds.warning: 500 -> 600" in outcome.run.flat
    assert outcome.writes() == [] and outcome.state == outcome.before


@scenario("converged")
def rate_limited(server):
    control(server, "POST", "/fake/inject", {"status": 429, "count": 1, "path": "/api/v1/monitor", "reset": 1})
    return playbook(server)


def test_an_injected_429_is_retried_and_the_run_succeeds(outcomes):
    outcome = outcomes["rate_limited"]
    assert outcome.run.rc == 0 and outcome.run.changed == 0, outcome.run
    monitor_calls = [r for r in outcome.requests if r["path"] == "/api/v1/monitor"]
    assert [r["status"] for r in monitor_calls] == [429, 200]
    assert monitor_calls[1]["time"] - monitor_calls[0]["time"] >= 0.9  # it waited X-RateLimit-Reset


@scenario("converged")
def bad_app_key(server):
    return playbook(server, env={"DD_APP_KEY": WRONG_APP_KEY})


def test_a_bad_application_key_stops_with_the_403_message(outcomes):
    outcome = outcomes["bad_app_key"]
    assert outcome.run.rc != 0 and outcome.run.failed == 1, outcome.run
    assert "although the API key is valid: check the application key, DD_APP_KEY in the environment" in \
        outcome.run.flat, outcome.run
    assert HIDDEN not in outcome.run.out  # ansible-core 2.16 hid a no_log task's message
    assert keys_leaked(outcome.run.out) == []
    assert keys_leaked(outcome.run.out) == []
    assert outcome.writes() == []


# ---- from an empty Datadog ---------------------------------------------------------------------


@scenario("fresh")
def check_mode_fresh(server):
    return playbook(server, "--check", "--diff")


def test_check_mode_writes_nothing_on_an_empty_datadog(outcomes):
    outcome = outcomes["check_mode_fresh"]
    assert outcome.run.rc == 0 and outcome.run.changed == 1, outcome.run
    for line in ("would create monitor 'my_metric is high on", "would create dashboard 'Datadog lab - API timeboard'",
                 "would create downtime 'Weekday nights'"):
        assert line in outcome.run.flat
    assert outcome.writes() == [] and outcome.state == outcome.before


@scenario("fresh")
def failing_server(server):
    control(server, "POST", "/fake/inject", {"status": 500})
    return playbook(server, "-e", "datadog_resources_retry_timeout=2")


def test_500_on_every_call_fails_clearly_after_the_bound(outcomes):
    outcome = outcomes["failing_server"]
    assert outcome.run.rc != 0 and outcome.run.failed == 1, outcome.run
    assert re.search(r"Datadog kept failing GET /api/v1/monitor at http://127\.0\.0\.1:\d+: \d+ attempts",
                     outcome.run.flat), outcome.run
    assert "HTTP 500: Injected failure 500" in outcome.run.flat
    assert HIDDEN not in outcome.run.out  # ansible-core 2.16 hid a no_log task's message
    assert keys_leaked(outcome.run.out) == []
    assert "datadog_resources_retry_timeout (2 s)" in outcome.run.flat
    times = [r["time"] for r in outcome.requests]
    assert len(times) >= 3 and times[-1] - times[0] <= 3.0
    assert outcome.state == outcome.before


@scenario("fresh")
def invalid_widget(server):
    source = (ROLE / "templates/dashboards/api_timeboard.yml").read_text()
    with tempfile.TemporaryDirectory() as folder:
        board = Path(folder) / "board.yml"
        board.write_text(source.replace("type: timeseries", "type: timeseriez", 1))
        return playbook(server, "-e", json.dumps({"datadog_resources_dashboards": [str(board)]}))


def test_an_invalid_widget_type_fails_before_any_request(outcomes):
    outcome = outcomes["invalid_widget"]
    assert outcome.run.rc != 0 and outcome.run.failed == 1, outcome.run
    assert re.search(r"board\.yml \(dashboards\[0\]\): widgets\[0\]\.definition\.type: unknown type \"timeseriez\"",
                     outcome.run.flat), outcome.run
    assert outcome.requests == []
    assert HIDDEN not in outcome.run.out  # ansible-core 2.16 hid a no_log task's message
    assert keys_leaked(outcome.run.out) == []
