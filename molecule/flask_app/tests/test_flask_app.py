"""The Flask app as the lab runs it: a sandboxed systemd service under ddtrace-run, answering the
seed's three routes, its traces reaching the agent's intake and its logs carrying their trace ids.

Written against the real agent's files and the app's own unit, so it holds on a real VM too; the
trace checks read what the agent stand-in (tests/doubles/agent_standin) records of each span.
"""

import json
import re
import time

import pytest
import yaml
from lab_testinfra import ROOT, ansible_playbook, http_get, inventory_values, task_output

ROUTES = {
    "/": ("Entrypoint to the Application", "from_entry_route"),
    "/api/apm": ("Getting APM Started", "from_apm_route"),
    "/api/trace": ("Posting Traces", "from_trace_route"),
}
ROUTE_TAGS = {tag for _, tag in ROUTES.values()}
TRACES = "/var/log/datadog/standin/traces.jsonl"
LOG_LINE = re.compile(r"dd\.trace_id=(?P<trace_id>[0-9a-f]+) dd\.span_id=\d+\] (?P<path>\S+) answered$")


@pytest.fixture(scope="module")
def app(host):
    names = ["service_name", "user", "group", "dir", "port", "dd_service", "dd_env", "dd_version", "dd_trace_agent_port"]
    values = inventory_values(host, [f"flask_app_{n}" for n in names], role="flask_app")
    return {n: str(values[f"flask_app_{n}"]) for n in names}


def get(host, app, path, timeout=3):
    return http_get(host, app["port"], path, timeout)


def show(host, unit, prop):
    return host.check_output("systemctl show -p %s --value %s", prop, unit).strip()


def test_service_is_active_and_enabled(host, app):
    svc = host.service(app["service_name"])
    assert svc.is_running
    assert svc.is_enabled


def test_app_runs_as_its_unprivileged_system_user(host, app):
    user = host.user(app["user"])
    assert user.exists
    assert user.uid < 1000, "not a system user"
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")
    main_pid = show(host, app["service_name"], "MainPID")
    workers = host.check_output("pgrep -d ' ' -P %s", main_pid).split()
    assert workers, "the gunicorn arbiter has no workers"
    for pid in [main_pid, *workers]:
        owner = host.check_output("ps -o user= -p %s", pid).strip()
        assert owner == app["user"], f"gunicorn process {pid} runs as {owner}"


def test_app_user_cannot_change_its_code_or_venv(host, app):
    for path in (f"{app['dir']}/app/lab_app.py", f"{app['dir']}/venv/bin/gunicorn", f"{app['dir']}/app"):
        res = host.run("runuser -u %s -- test -w %s", app["user"], path)
        assert res.rc != 0, f"{app['user']} can write {path}"


def test_unit_runs_gunicorn_under_ddtrace_run_with_absolute_venv_paths(host, app):
    exec_start = show(host, app["service_name"], "ExecStart")
    venv = f"{app['dir']}/venv/bin"
    assert f"path={venv}/ddtrace-run" in exec_start
    assert f"{venv}/ddtrace-run {venv}/gunicorn" in exec_start
    assert f"0.0.0.0:{app['port']}" in exec_start


def test_unit_sets_unified_service_tagging_and_log_injection(host, app):
    env = show(host, app["service_name"], "Environment").split()
    assert f"DD_SERVICE={app['dd_service']}" in env
    assert f"DD_ENV={app['dd_env']}" in env
    assert f"DD_VERSION={app['dd_version']}" in env
    assert "DD_LOGS_INJECTION=true" in env
    assert f"DD_TRACE_AGENT_PORT={app['dd_trace_agent_port']}" in env
    assert any(e.startswith("DD_AGENT_HOST=") for e in env)


@pytest.mark.parametrize(
    "prop, expected",
    [
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictNamespaces", "yes"),
    ],
)
def test_unit_is_sandboxed(host, app, prop, expected):
    assert show(host, app["service_name"], prop) == expected


def test_sandbox_is_in_force_in_the_running_process(host, app):
    pid = show(host, app["service_name"], "MainPID")
    status = host.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    mounts = {}  # mount point -> (root, options) of the last (visible) mount there
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = (fields[3], fields[5].split(","))
    assert "ro" in mounts.get("/usr", mounts["/"])[1], "ProtectSystem=strict leaves /usr writable"
    assert "ro" in mounts.get("/opt", mounts["/"])[1], "ProtectSystem=strict leaves /opt writable"
    assert mounts["/home"][0].endswith("/inaccessible/dir"), "ProtectHome leaves /home visible"
    assert "systemd-private-" in mounts["/tmp"][0], "PrivateTmp gives no private /tmp"


def test_app_listens_on_all_addresses_at_its_port(host, app):
    assert host.socket(f"tcp://0.0.0.0:{app['port']}").is_listening


@pytest.mark.parametrize("path", ROUTES)
def test_route_answers_its_body(host, app, path):
    assert get(host, app, path) == (200, ROUTES[path][0])


def test_unknown_route_is_404(host, app):
    assert get(host, app, "/nope")[0] == 404


def test_agent_collects_the_apps_journal_as_its_service(host, app):
    """A conf.d logs entry reads the unit's journal with source python and the app's DD_SERVICE."""
    entries = []
    for path in host.check_output("find /etc/datadog-agent/conf.d -name '*.yaml'").split():
        conf = yaml.safe_load(host.file(path).content_string) or {}
        entries += [e for e in conf.get("logs") or [] if f"{app['service_name']}.service" in e.get("include_units", [])]
    assert len(entries) == 1, "expected one logs entry for the app's unit"
    assert entries[0]["type"] == "journald"
    assert entries[0]["source"] == "python"
    assert entries[0]["service"] == app["dd_service"]
    agent_config = yaml.safe_load(host.file("/etc/datadog-agent/datadog.yaml").content_string)
    assert agent_config.get("logs_enabled") is True, "datadog.yaml does not enable log collection"


@pytest.fixture(scope="module")
def traffic(host, app):
    """Three requests per route; then the app's log lines for them and the spans the agent holds.

    Waits (at most 20 s) until every request's log line has a recorded span with its trace id.
    """
    cursor = host.check_output("journalctl -u %s -n 0 --show-cursor -q", app["service_name"])
    cursor = cursor.strip().split("cursor: ", 1)[-1]
    for _ in range(3):
        for path in ROUTES:
            assert get(host, app, path)[0] == 200
    lines, spans = [], []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        journal = host.check_output("journalctl -u %s --after-cursor=%s -o cat -q", app["service_name"], cursor)
        lines = [m for m in map(LOG_LINE.search, journal.splitlines()) if m]
        recorded = host.run("cat %s", TRACES)
        spans = [json.loads(line) for line in recorded.stdout.splitlines() if line.strip()]
        ids = {full_trace_id(s) for s in spans}
        if len(lines) >= 3 * len(ROUTES) and all(log_trace_id(m) in ids for m in lines):
            break
        time.sleep(1)
    return {"lines": lines, "spans": spans}


def full_trace_id(span):
    """The 128-bit trace id: the payload carries the low 64 bits, the tag _dd.p.tid the high ones."""
    high = span["meta"].get("_dd.p.tid")
    return (int(high, 16) << 64 | span["trace_id"]) if high else span["trace_id"]


def log_trace_id(match):
    """ddtrace logs a 128-bit id as 32 hex digits, a 64-bit one in decimal."""
    value = match["trace_id"]
    return int(value, 16) if len(value) == 32 else int(value)


def request_spans(traffic, app):
    """Root spans of the app's requests that the agent recorded."""
    return [s for s in traffic["spans"] if s["service"] == app["dd_service"] and not s["parent_id"]]


def test_log_lines_of_requests_carry_service_tags_and_a_trace_id(traffic, app):
    assert len(traffic["lines"]) == 3 * len(ROUTES), "one log line per request"
    for match in traffic["lines"]:
        line = match.string
        assert f"dd.service={app['dd_service']} dd.env={app['dd_env']} dd.version={app['dd_version']}" in line
        assert log_trace_id(match) != 0


def test_agent_received_spans_with_the_lab_service_env_and_version(traffic, app):
    roots = request_spans(traffic, app)
    assert roots, f"no root span of service {app['dd_service']} in {TRACES}"
    for span in roots:
        assert span["meta"].get("env") == app["dd_env"]
        assert span["meta"].get("version") == app["dd_version"]
        assert span["type"] == "web"


@pytest.mark.parametrize("path", ROUTES)
def test_agent_received_the_route_resource_with_its_tag_on_the_root_span(traffic, app, path):
    tag = ROUTES[path][1]
    roots = [s for s in request_spans(traffic, app) if s["resource"] == f"GET {path}"]
    assert roots, f"no root span with resource 'GET {path}'"
    for span in roots:
        assert span["meta"].get(tag) == "true"
        assert not (ROUTE_TAGS - {tag}) & span["meta"].keys()


@pytest.mark.parametrize("path", ROUTES)
def test_log_line_carries_the_trace_id_of_its_request_span(traffic, app, path):
    by_trace = {full_trace_id(s): s for s in request_spans(traffic, app)}
    matches = [m for m in traffic["lines"] if m["path"] == path]
    assert matches, f"no log line for {path}"
    for match in matches:
        span = by_trace.get(log_trace_id(match))
        assert span is not None, f"no span of trace {match['trace_id']} for the line {match.string!r}"
        assert span["resource"] == f"GET {path}"


def test_killed_app_is_restarted_by_systemd_within_10_s(host, app):
    unit = app["service_name"]
    old_pid = show(host, unit, "MainPID")
    assert old_pid != "0"
    host.check_output("kill -9 %s", old_pid)
    deadline = time.monotonic() + 10
    answer = (0, "")
    while time.monotonic() < deadline:
        pid = show(host, unit, "MainPID")
        if pid not in ("0", old_pid):
            answer = get(host, app, "/", timeout=1)
            if answer[0] == 200:
                break
        time.sleep(0.25)
    assert answer == (200, ROUTES["/"][0]), "the app did not answer again within 10 s of kill -9"
    assert host.service(unit).is_running


def test_a_rerun_puts_back_what_was_changed_by_hand_and_restarts_the_app(host, app):
    """Each task's own module finds what differs and puts it back: here the module's content, an earlier
    release's package directory beside it, the unit file's mode, the unit disabled, the app user's shell and a
    pinned package removed from the venv. What was left alone is reported unchanged."""
    unit = app["service_name"]
    module = f"{app['dir']}/app/lab_app.py"
    old_package = f"{app['dir']}/app/lab_app"
    unit_file = f"/etc/systemd/system/{unit}.service"
    venv_python = f"{app['dir']}/venv/bin/python"
    old_pid = show(host, unit, "MainPID")
    host.run_test("echo '# changed by hand' >> %s", module)
    host.run_test("mkdir %s && touch %s/__init__.py", old_package, old_package)
    host.run_test("chmod 0600 %s", unit_file)
    host.run_test("systemctl disable --quiet %s", unit)
    host.run_test("usermod -s /bin/sh %s", app["user"])
    host.run_test("%s -m pip uninstall -q -y blinker", venv_python)

    rc, out = ansible_playbook("playbooks/app.yml", limit=host.backend.host)
    assert rc == 0, out[-3000:]
    # ("changed: [host]" is a task's status line.)
    for task in ("App module is in place",
                 "No earlier release's package directory shadows the module",
                 "Systemd unit runs gunicorn under ddtrace-run, sandboxed",
                 "App runs as its own unprivileged system user without a login shell",
                 "Venv holds the pinned versions of Flask, ddtrace, gunicorn and their dependencies",
                 "App is running and starts at boot",
                 "Restart the Flask app"):
        assert "changed: [" in task_output(out, f"flask_app : {task}"), task_output(out, f"flask_app : {task}")
    for task in ("App group exists", "App directory and its code directory exist",
                 "Pinned requirements are recorded beside the venv"):
        assert "changed: [" not in task_output(out, f"flask_app : {task}"), task_output(out, f"flask_app : {task}")

    assert host.file(module).content_string == (ROOT / "roles/flask_app/files/lab_app.py").read_text()
    assert not host.file(old_package).exists
    assert host.file(unit_file).mode == 0o644
    assert host.service(unit).is_enabled
    assert host.user(app["user"]).shell == "/usr/sbin/nologin"
    pins = (ROOT / "roles/flask_app/files/requirements.txt").read_text()
    blinker = re.search(r"^blinker==(\S+)$", pins, re.MULTILINE).group(1)
    assert host.check_output("%s -m pip show blinker", venv_python).splitlines()[1] == f"Version: {blinker}"
    assert show(host, unit, "MainPID") not in ("0", old_pid), "the app was not restarted"
    deadline = time.monotonic() + 30
    while get(host, app, "/")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get(host, app, "/") == (200, ROUTES["/"][0])


def test_log_injection_follows_its_boolean_passed_as_a_string(host, app):
    """`-e flask_app_dd_logs_injection=false` (a string, as every -e key=value is) turns it off in the unit, and
    `=true` turns it on again; each time the app is restarted with it."""
    unit = app["service_name"]
    try:
        for extra_var in ("flask_app_dd_logs_injection=false", "flask_app_dd_logs_injection=true"):
            old_pid = show(host, unit, "MainPID")
            rc, out = ansible_playbook("playbooks/app.yml", "-e", extra_var, limit=host.backend.host)
            assert rc == 0, out[-3000:]
            assert "DD_LOGS_INJECTION=" + extra_var.split("=")[1] in show(host, unit, "Environment").split()
            assert show(host, unit, "MainPID") not in ("0", old_pid), "the app was not restarted"
    finally:
        rc, out = ansible_playbook("playbooks/app.yml", limit=host.backend.host)
    assert rc == 0, out[-3000:]
