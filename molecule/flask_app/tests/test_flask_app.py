"""The Flask app as the lab runs it: a sandboxed systemd service under ddtrace-run, answering the
seed's three routes and /api/db (the lab's table, read as the app's own database user), its traces
reaching the agent's intake, linked to its queries for Database Monitoring, and its logs carrying
their trace ids.

Written against the real agent's files and the app's own unit, so it holds on a real VM too; the
trace checks read what the agent stand-in (tests/doubles/agent_standin) records of each span.
"""

import json
import os
import re
import time

import pytest
import yaml
from lab_testinfra import ROOT, ansible_playbook, http_get, inventory_values, task_output, wait_for

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


# GET /api/db: the lab's table read as the app's own database user, linked to Database Monitoring.
DB_ROUTE = "/api/db"
DB_TAG = "from_db_route"
DBM_INJECTED = "_dd.dbm_trace_injected"
TRACEPARENT = re.compile(r"traceparent='00-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})-0[01]'")
DOGSTATSD = "/var/log/datadog/standin/dogstatsd.log"
PROFILES = "/var/log/datadog/standin/profiles.jsonl"


@pytest.fixture(scope="module")
def db(host):
    names = ["db_host", "db_port", "db_name", "db_table", "db_user", "db_password", "dd_dbm_propagation_mode",
             "dd_runtime_metrics_enabled", "dd_profiling_enabled", "dd_dogstatsd_port"]
    values = inventory_values(host, [f"flask_app_{n}" for n in names], role="flask_app")
    db = {n: values[f"flask_app_{n}"] for n in names}
    assert db["db_user"] and db["db_password"], "the lab's inventory gives the app a database user and its password"
    return db


def psql_admin(host, db, sql):
    return host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s", str(db["db_port"]), db["db_name"], sql)


def psql_as_app(host, db, sql, password=None):
    return host.run("PGPASSWORD=%s psql -h %s -p %s -U %s -d %s -XAtc %s", password or db["db_password"],
                    db["db_host"], str(db["db_port"]), db["db_user"], db["db_name"], sql)


def spans_recorded(host, after=0):
    """The spans the agent recorded, from its AFTER-th on."""
    return [json.loads(line) for line in host.run("cat %s", TRACES).stdout.splitlines()[after:] if line.strip()]


def process_environment(host, pid):
    return host.check_output("tr '\\0' '\\n' < /proc/%s/environ", pid).splitlines()


def test_db_route_answers_the_row_count_and_max_of_the_lab_table(host, app, db):
    psql_admin(host, db, f"insert into {db['db_table']} (num1, num2, num3) select g, g, g from generate_series(1, 5) g")
    rows, max_num1 = psql_admin(host, db, f"select count(*), max(num1) from {db['db_table']}").split("|")
    status, body = get(host, app, DB_ROUTE, timeout=10)
    assert status == 200, body
    answer = json.loads(body)
    assert (answer["table"], answer["rows"], answer["max_num1"]) == (db["db_table"], int(rows), int(max_num1))
    assert isinstance(answer["avg_num3"], float)


def test_the_apps_database_user_reads_the_lab_table_and_nothing_else(host, db):
    table = db["db_table"]
    res = psql_as_app(host, db, f"select count(*) from {table}")
    assert res.rc == 0, res.stderr
    psql_admin(host, db, "create table if not exists app_cannot_read (i int)")
    try:
        for sql in (f"begin; insert into {table} (num1, num2, num3) values (1, 1, 1); rollback",
                    "select count(*) from pg_authid", "select count(*) from app_cannot_read"):
            res = psql_as_app(host, db, sql)
            assert res.rc != 0 and "permission denied for" in res.stderr, f"{sql}: {res.stdout}{res.stderr}"
    finally:
        psql_admin(host, db, "drop table app_cannot_read")


def test_the_database_password_is_in_a_file_only_root_reads_never_in_the_unit(host, app, db):
    unit = app["service_name"]
    env_file = f"{app['dir']}/database.env"
    assert show(host, unit, "EnvironmentFiles").split()[0] == env_file
    f = host.file(env_file)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    assert host.run("runuser -u %s -- cat %s", app["user"], env_file).rc != 0, f"{app['user']} can read {env_file}"
    assert db["db_password"] not in host.file(f"/etc/systemd/system/{unit}.service").content_string
    assert db["db_password"] not in host.check_output("systemctl show %s", unit)
    environment = process_environment(host, show(host, unit, "MainPID"))
    assert f"PGPASSWORD={db['db_password']}" in environment
    assert f"PGUSER={db['db_user']}" in environment
    assert f"PGHOST={db['db_host']}" in environment


def test_unit_links_queries_to_traces_and_turns_on_runtime_metrics_and_the_profiler(host, app, db):
    env = show(host, app["service_name"], "Environment").split()
    assert db["dd_dbm_propagation_mode"] == "full"
    assert "DD_DBM_PROPAGATION_MODE=full" in env
    assert f"DD_RUNTIME_METRICS_ENABLED={str(db['dd_runtime_metrics_enabled']).lower()}" in env
    assert f"DD_PROFILING_ENABLED={str(db['dd_profiling_enabled']).lower()}" in env
    assert "DD_RUNTIME_METRICS_ENABLED=true" in env and "DD_PROFILING_ENABLED=true" in env
    assert f"DD_DOGSTATSD_PORT={db['dd_dogstatsd_port']}" in env


@pytest.fixture(scope="module")
def db_traffic(host, app):
    """Three requests to /api/db; then their root spans and the PostgreSQL spans of their traces that the agent
    recorded since (waits at most 20 s for three of each)."""
    recorded_before = len(spans_recorded(host))
    for _ in range(3):
        status, body = get(host, app, DB_ROUTE, timeout=10)
        assert status == 200, body
    roots, queries, spans = [], [], []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        spans = spans_recorded(host, after=recorded_before)
        roots = [s for s in spans if s["resource"] == f"GET {DB_ROUTE}" and not s["parent_id"]]
        traces = {s["trace_id"] for s in roots}
        queries = [s for s in spans if s["trace_id"] in traces and s["meta"].get("db.system") == "postgresql"
                   and s["type"] == "sql" and DB_ROUTE not in s["resource"]]
        if len(roots) >= 3 and len(queries) >= 3:
            break
        time.sleep(1)
    return {"roots": roots, "queries": queries, "spans": spans}


def test_db_route_tags_its_root_span(db_traffic, app):
    assert db_traffic["roots"], f"no root span with resource 'GET {DB_ROUTE}'"
    for span in db_traffic["roots"]:
        assert span["service"] == app["dd_service"]
        assert span["meta"].get(DB_TAG) == "true"
        assert not ROUTE_TAGS & span["meta"].keys()


def test_the_query_span_says_its_trace_went_with_the_sql(db_traffic, app, db):
    """The psycopg span of each /api/db request: a PostgreSQL query of the lab's table by the app's user, marked
    _dd.dbm_trace_injected (DD_DBM_PROPAGATION_MODE=full: the SQL carried the trace's traceparent)."""
    queries = [s for s in db_traffic["queries"] if db["db_table"] in s["resource"]]
    assert len(queries) >= 3, f"no PostgreSQL span of the table in the /api/db traces: {db_traffic['queries']}"
    for span in queries:
        assert span["meta"].get("component") == "psycopg"
        assert span["meta"].get("db.user") == db["db_user"]
        assert span["meta"].get("db.name") == db["db_name"]
        assert span["meta"].get(DBM_INJECTED) == "true" or span["metrics"].get(DBM_INJECTED) == 1, span


def test_postgresql_received_the_traceparent_of_a_recorded_query_span(host, db, db_traffic):
    """pg_stat_statements keeps the text of a statement's first run, comment included: its traceparent names the
    trace (128 bits: the span carries the low 64, its root's _dd.p.tid the high ones) and the query span of that
    run, which the agent recorded in a trace of /api/db."""
    sql = ("select s.query from pg_stat_statements s join pg_roles r on r.oid = s.userid "
           f"where r.rolname = '{db['db_user']}' and s.query like '%{db['db_table']}%'")
    texts = psql_admin(host, db, sql).splitlines()
    matches = [m for m in map(TRACEPARENT.search, texts) if m]
    assert matches, f"no statement of {db['db_user']} carried a traceparent: {texts}"

    def recorded():
        spans = spans_recorded(host)
        by_id = {(s["trace_id"], s["span_id"]): s for s in spans}
        roots = {s["trace_id"]: s for s in spans if not s["parent_id"]}
        found = []
        for match in matches:
            trace_id, low = int(match["trace_id"], 16), int(match["trace_id"][16:], 16)
            span, root = by_id.get((low, int(match["span_id"], 16))), roots.get(low)
            found.append((span, root) if span and root and full_trace_id(root) == trace_id else None)
        return found if all(found) else None

    found = wait_for(recorded, timeout=20)
    assert found, f"the traceparent names no span the agent recorded: {[m.group(0) for m in matches]}"
    for span, root in found:
        assert span["meta"].get("db.system") == "postgresql" and db["db_table"] in span["resource"], span
        assert root["resource"] == f"GET {DB_ROUTE}", root


def test_the_runtime_metrics_reach_the_agents_dogstatsd(host, app):
    def runtime_lines():
        lines = host.run("cat %s", DOGSTATSD).stdout.splitlines()
        return [line for line in lines if line.startswith("runtime.python.") and f"service:{app['dd_service']}" in line]

    assert wait_for(runtime_lines, timeout=30), f"no runtime.python.* metric of {app['dd_service']} in {DOGSTATSD}"


def test_the_profiler_is_not_disabled_by_the_sandbox_and_profiles(host, app):
    """ddtrace disables the profiler, saying so in the journal, when its native module can't load or a collector
    can't start: the unit's sandbox (MemoryDenyWriteExecute, SystemCallFilter) must allow both. And the agent's
    intake received the app's profiles (one a minute per process), each with a pprof of samples."""
    journal = host.check_output("journalctl -u %s -o cat -q --no-pager", app["service_name"])
    assert "disabling profiling" not in journal
    assert not re.search(r"Failed to (start|load) .*(collector|ddup)", journal), journal[-3000:]

    def profiles():
        records = [json.loads(line) for line in host.run("cat %s", PROFILES).stdout.splitlines() if line.strip()]
        return [r for r in records if f"service:{app['dd_service']}" in r["event"].get("tags_profiler", "")
                and any(name.endswith(".pprof") and size > 0 for name, size in r["files"].items())]

    assert wait_for(profiles, timeout=75), f"no profile of {app['dd_service']} in {PROFILES}"


def test_runtime_metrics_and_the_profiler_follow_their_booleans_passed_as_strings(host, app):
    """`-e flask_app_dd_runtime_metrics_enabled=false -e flask_app_dd_profiling_enabled=false` (strings, as every -e
    key=value is) turn both off in the unit, `=true` on again; each time the app is restarted with them."""
    unit = app["service_name"]
    try:
        for extra in (("flask_app_dd_runtime_metrics_enabled=false", "flask_app_dd_profiling_enabled=false"),
                      ("flask_app_dd_runtime_metrics_enabled=true", "flask_app_dd_profiling_enabled=true")):
            value = extra[0].split("=")[1]
            old_pid = show(host, unit, "MainPID")
            rc, out = ansible_playbook("playbooks/app.yml", "-e", extra[0], "-e", extra[1], limit=host.backend.host)
            assert rc == 0, out[-3000:]
            env = show(host, unit, "Environment").split()
            assert f"DD_RUNTIME_METRICS_ENABLED={value}" in env and f"DD_PROFILING_ENABLED={value}" in env, env
            assert show(host, unit, "MainPID") not in ("0", old_pid), "the app was not restarted"
    finally:
        rc, out = ansible_playbook("playbooks/app.yml", limit=host.backend.host)
    assert rc == 0, out[-3000:]


def test_a_new_app_database_password_reaches_the_app_and_no_run_prints_either(host, app, db):
    """A new lab_app_db_password (with every character that needs care in a systemd environment file) through the
    database and app parts of site.yml: previewed with --check --diff, applied, then the inventory's put back, each
    run at -vvv with --diff. The user task and the environment file change each time; no output holds either
    password; the app logs in with the one in force."""
    unit = app["service_name"]
    rotated = "new pass 'q\" $HOME `x` \\ " + os.urandom(6).hex()
    runs = [("previewed", ["--check"], {"lab_app_db_password": rotated}),
            ("applied", [], {"lab_app_db_password": rotated})]
    try:
        for what, args, extra_vars in runs:
            rc, out = ansible_playbook("site.yml", "--tags", "database,app", "--diff", "-vvv", *args,
                                       limit=host.backend.host, extra_vars=extra_vars)
            assert rc == 0, out[-3000:]
            for task in ("postgresql : App database user exists with its password",
                         "flask_app : The app's database settings are in an environment file only root can read"):
                assert "changed: [" in task_output(out, task), f"{what}: {task_output(out, task)}"
            leaks = [name for name, secret in (("the new password", rotated), ("the inventory's", db["db_password"]))
                     if secret in out]
            assert not leaks, f"the {what} run printed {' and '.join(leaks)}"
        assert f"PGPASSWORD={rotated}" in process_environment(host, show(host, unit, "MainPID"))
        assert get(host, app, DB_ROUTE, timeout=10)[0] == 200
        assert psql_as_app(host, db, "select 1", password=rotated).rc == 0
    finally:
        rc, out = ansible_playbook("site.yml", "--tags", "database,app", "--diff", "-vvv", limit=host.backend.host)
    assert rc == 0, out[-3000:]
    assert rotated not in out and db["db_password"] not in out
    assert f"PGPASSWORD={db['db_password']}" in process_environment(host, show(host, unit, "MainPID"))
    assert get(host, app, DB_ROUTE, timeout=10)[0] == 200
