"""playbooks/verify.yml on the whole lab (issue 14): every line passes after the traffic, then one broken
part per area (agent, database, app) fails its own line with its message, and passes again once repaired.

The path under test: app -> agent stand-in (it forwards what it collects) -> the fake API's intake ->
its read endpoints -> verify on the controller. Kept to a few short runs (lab_verify_checks and
lab_verify_since narrow each one to the part at hand).
"""
import datetime
import math
import os
import time
from zoneinfo import ZoneInfo

from conftest import fake_api_call
from lab_testinfra import ansible_playbook, http_get, inventory_value, wait_for

CHECKS = ("host", "my_metric", "postgres", "dbm", "apm", "db_spans", "runtime", "logs", "dashboards", "monitor",
          "downtimes")


def verify(*args, extra_vars=None):
    """playbooks/verify.yml with the scenario's inventory: (returncode, output), never holding a key."""
    rc, out = ansible_playbook("playbooks/verify.yml", *args, extra_vars=extra_vars, timeout=300)
    for key in (os.environ["DD_API_KEY"], os.environ["DD_APP_KEY"]):
        assert key not in out
    return rc, out


def narrowed(checks, since, timeout=0, poll=3):
    return verify(extra_vars={"lab_verify_checks": list(checks), "lab_verify_since": "%.3f" % since,
                              "lab_verify_timeout": timeout, "lab_verify_poll": poll})


def line(out, check):
    """The printed line of one check (the last one printed): (passed?, text)."""
    for text in reversed(out.splitlines()):
        text = text.strip()
        for state in ("passed", "FAILED"):
            if text.startswith(state) and text[len(state):].split()[:1] == [check]:
                return state == "passed", text
    raise AssertionError("no line for %s in:\n%s" % (check, out[-3000:]))


def get_routes(host, lab, wait=0):
    """The app's three routes, once each, from inside the instance: their HTTP statuses, 0 for no
    answer. With WAIT, first waits up to WAIT seconds for the app to answer (a restarted app takes
    far longer than its unit's start under emulation)."""
    port = lab["lab_app_port"]
    if wait:
        wait_for(lambda: http_get(host, port, "/")[0] == 200, timeout=wait)
    return [http_get(host, port, route)[0] for route in ("/", "/api/apm", "/api/trace")]


def test_every_verify_line_passes_on_the_lab_after_the_traffic():
    rc, out = verify("-e", "lab_verify_timeout=60", "-e", "lab_verify_poll=5")
    assert rc == 0, out[-3000:]
    for check in CHECKS:
        assert line(out, check)[0], line(out, check)


def test_a_stopped_agent_fails_the_host_line_then_reports_again(host):
    host.run_test("systemctl stop datadog-agent")
    try:
        since = time.time() + 1
        time.sleep(1.5)
        rc, out = narrowed(["host"], since)
        passed, text = line(out, "host")
        assert rc != 0 and not passed and "systemctl status datadog-agent" in text, text
    finally:
        host.run_test("systemctl start datadog-agent")
    rc, out = narrowed(["host"], time.time() - 1, timeout=30)
    assert rc == 0, out[-2000:]


def test_a_stopped_database_fails_the_postgres_line(host):
    host.run_test("systemctl stop postgresql")
    try:
        since = time.time()
        rc, out = narrowed(["postgres"], since)
        passed, text = line(out, "postgres")
        assert rc != 0 and not passed and "systemctl status postgresql" in text, text
    finally:
        host.run_test("systemctl start postgresql")


def test_a_stopped_app_fails_the_apm_line_then_passes_again_after_requests(host, lab):
    service = lab["flask_app_service_name"]
    host.run_test("systemctl stop %s", service)
    try:
        # Trace stats are points at the end of 10 s buckets: count only buckets that end after the stop.
        since = math.ceil(time.time() / 10) * 10 + 0.5
        time.sleep(max(0, since - time.time()))
        assert get_routes(host, lab) == [0, 0, 0], "the stopped app still answers"
        rc, out = narrowed(["apm"], since)
        passed, text = line(out, "apm")
        assert rc != 0 and not passed and "systemctl status %s" % service in text, text
    finally:
        host.run_test("systemctl start %s", service)
    since = time.time()
    deadline = time.monotonic() + 30
    while host.run("systemctl is-active %s", service).stdout.strip() != "active" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get_routes(host, lab, wait=120) == [200, 200, 200], "the restarted app did not answer in 120 s"
    rc, out = narrowed(["apm"], since, timeout=60, poll=4)
    assert rc == 0, out[-2000:]


def test_the_downtimes_line_passes_at_a_working_hour(host):
    """Issue 26: at 11:00 on a Tuesday in the downtimes' timezone both are scheduled, not active, and
    the line passes with each one's next start. The fake's clock says when it is (PUT /fake/clock)."""
    zone = ZoneInfo(inventory_value(host, "datadog_resources_downtime_timezone", role="datadog_resources"))
    today = datetime.datetime.now(zone)
    tuesday = (today + datetime.timedelta(days=(1 - today.weekday()) % 7 or 7)).replace(
        hour=11, minute=0, second=0, microsecond=0)
    fake_api_call("PUT", "/fake/clock", {"now": tuesday.isoformat()})
    try:
        rc, out = narrowed(["resources"], time.time())
    finally:
        fake_api_call("DELETE", "/fake/clock")
    passed, text = line(out, "downtimes")
    assert rc == 0 and passed, text
    assert text.count("(scheduled, next ") == 2, text
