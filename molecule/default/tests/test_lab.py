"""The whole lab, end to end: site.yml converged, playbooks/traffic.yml run (side_effect).

Written against the agent's CLI, files and ports, so the same checks hold on a real VM; only the
trace-intake record (/var/log/datadog/standin/) and the fake API's state are the doubles' own.
"""
import json
import os
import re
import subprocess

from conftest import fake_api_get
from lab_testinfra import (ansible_playbook, assert_every_service_answers, http_get, inventory_value, task_output,
                            wait_for)

TRACES = "/var/log/datadog/standin/traces.jsonl"


def spans(host):
    return [json.loads(line) for line in host.file(TRACES).content_string.splitlines() if line.strip()]


def test_spans_of_the_seeds_three_routes_and_api_db_reached_the_intake(host, lab):
    """The seed's three routes keep their resources and root span tags; the generator's GET /api/db has its own."""
    wanted = {"GET /", "GET /api/apm", "GET /api/trace", "GET /api/db"}
    ours = wait_for(lambda: [s for s in spans(host) if s["service"] == lab["lab_service"]
                             and s["meta"].get("env") == lab["lab_env"]])
    assert wanted <= {s["resource"] for s in ours}
    tags = {k for s in ours for k, v in s["meta"].items() if k.startswith("from_") and v == "true"}
    assert tags == {"from_entry_route", "from_apm_route", "from_trace_route", "from_db_route"}


def test_postgres_statistics_show_the_generators_inserts_and_deletes(host, lab):
    sql = ("select n_tup_ins, n_tup_del from pg_stat_user_tables "
           f"where relname = '{lab['lab_table']}'")

    def counts():
        out = host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s",
                                str(lab["lab_postgresql_port"]), lab["lab_database"], sql)
        ins, dele = (int(x) for x in out.split("|"))
        return (ins, dele) if ins > 0 and dele > 0 else None

    assert wait_for(counts, timeout=15), "no inserts or deletes counted on the table"


def test_custom_random_check_passes(host):
    res = host.run("datadog-agent check custom_random")
    assert res.rc == 0, res.stdout + res.stderr
    assert "my_metric" in res.stdout


def test_postgres_check_logs_in_and_sees_the_lab_table_without_an_error(host, lab):
    res = host.run("DD_LOG_LEVEL=error datadog-agent check postgres")
    assert res.rc == 0, res.stdout + res.stderr
    assert "postgresql.table.count" in res.stdout or "postgresql.connections" in res.stdout
    assert "table:%s" % lab["lab_table"] in res.stdout
    # `schemas` in a relation makes Datadog's check fail its pg_index query on every run (issue 25).
    assert "Error querying pg_index" not in res.stdout + res.stderr
    assert "ERROR" not in host.file("/var/log/datadog/agent.log").content_string


def psql_as_postgres(host, lab, sql, database="postgres"):
    return host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s",
                             str(lab["lab_postgresql_port"]), database, sql)


def test_the_server_is_the_postgresql_major_the_role_settled_and_runs(host, lab):
    """postgresql_version when the inventory sets one (the bionic scenario: 10, through PGDG), else the distribution's."""
    major = str(int(psql_as_postgres(host, lab, "show server_version_num")) // 10000)
    version, cluster, port, status = host.check_output("pg_lsclusters -h").split()[:4]
    assert (version, cluster, port, status) == (major, "main", str(lab["lab_postgresql_port"]), "online")
    wanted = inventory_value(host, "postgresql_version")
    assert not wanted or major == str(wanted), f"PostgreSQL {major} runs, postgresql_version is {wanted}"


def test_the_monitoring_user_logs_in_over_tcp_with_scram_and_reads_pg_stat_database(host, lab):
    """What the agent's Postgres check does: a password login over TCP, checked as scram-sha-256."""
    user = lab["lab_monitoring_user"]
    sql = f"select count(*) from pg_stat_database where datname = '{lab['lab_database']}'"
    res = host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d postgres -XAtc %s",
                   lab["lab_monitoring_password"], str(lab["lab_postgresql_port"]), user, sql)
    assert res.rc == 0 and res.stdout.strip() == "1", res.stderr
    assert psql_as_postgres(host, lab, f"select left(rolpassword, 14) from pg_authid where rolname = '{user}'") \
        == "SCRAM-SHA-256$"
    methods = psql_as_postgres(host, lab, "select distinct auth_method from pg_hba_file_rules "
                                          f"where '{user}' = any(user_name) and type = 'host'")
    assert methods.split() == ["scram-sha-256"]


def test_database_monitoring_shows_the_traffics_statements_and_their_plans_to_the_monitoring_user(host, lab):
    """Database Monitoring's setup (lab_dbm), as the agent uses it: the preload, then, as the monitoring user in the
    lab's database, the generator's statements in pg_stat_statements and a plan from datadog.explain_statement."""
    assert psql_as_postgres(host, lab, "show shared_preload_libraries") == "pg_stat_statements"

    def as_monitoring_user(sql):
        res = host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d %s -XAtc %s", lab["lab_monitoring_password"],
                       str(lab["lab_postgresql_port"]), lab["lab_monitoring_user"], lab["lab_database"], sql)
        assert res.rc == 0, res.stderr
        return res.stdout.strip()

    table = lab["lab_table"]
    assert int(as_monitoring_user(f"select count(*) from pg_stat_statements where query like 'INSERT INTO {table}%'")) > 0
    plan = json.loads(as_monitoring_user(f"select datadog.explain_statement('SELECT * FROM {table}')"))
    assert plan[0]["Plan"]["Relation Name"] == table, plan


def test_the_lab_table_keeps_its_rows_across_a_converge(host, lab):
    """A converge of the database part never truncates, reloads or recreates large_test."""
    table, db = lab["lab_table"], lab["lab_database"]
    psql_as_postgres(host, lab, f"insert into {table} select 1, 2.5, 3.5 from generate_series(1, 7)", db)
    before = psql_as_postgres(host, lab, f"select count(*), sum(num1) from {table}", db)
    run_playbook("site.yml", "--tags", "database")
    assert psql_as_postgres(host, lab, f"select count(*), sum(num1) from {table}", db) == before


def test_the_app_runs_on_the_interpreter_the_role_chose_with_its_pinned_ddtrace(host, lab):
    """The unit's venv: flask_app_python's version when the inventory sets one (bionic: 3.8), the pinned ddtrace."""
    exec_start = host.check_output("systemctl show -P ExecStart %s", lab["flask_app_service_name"])
    ddtrace_run = re.search(r"path=(\S+)", exec_start).group(1)
    venv_python = os.path.join(os.path.dirname(ddtrace_run), "python")
    probe = "import sys, ddtrace, flask; print('%d.%d' % sys.version_info[:2], ddtrace.__version__)"
    version, ddtrace_version = host.check_output("%s -c %s", venv_python, probe).split()
    wanted = inventory_value(host, "flask_app_python")
    if wanted:
        assert version == host.check_output("%s -c %s", wanted, "import sys; print('%d.%d' % sys.version_info[:2])")
    pins = host.file(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(ddtrace_run))),
                                  "requirements.txt")).content_string
    assert f"ddtrace=={ddtrace_version}" in pins.splitlines(), (ddtrace_version, pins)


def test_dashboards_monitor_and_downtimes_exist_in_the_api():
    state = fake_api_get("/fake/state")
    titles = {d["title"] for d in state["dashboards"].values()}
    assert len(titles) == 3, titles
    assert any("my_metric" in m["query"] for m in state["monitors"].values())
    live = [d for d in state["downtimes"].values() if d["attributes"].get("status") != "canceled"]
    assert len(live) == 2


def run_playbook(playbook, *args):
    """ansible-playbook on this instance, with the scenario's inventory and environment; must pass."""
    rc, out = ansible_playbook(playbook, *args)
    assert rc == 0, out[-3000:]
    return out


def test_check_mode_on_the_converged_lab_changes_nothing_and_prints_no_secret(host, lab):
    """`ansible-playbook site.yml --check --diff -vvv` against this instance: changed=0, no key."""
    out = run_playbook("site.yml", "--check", "--diff", "-vvv")
    recap = out[out.rindex("PLAY RECAP"):]
    assert "changed=0" in recap and "changed=1" not in recap, recap
    for secret in (os.environ["DD_API_KEY"], os.environ["DD_APP_KEY"], lab["lab_monitoring_password"]):
        assert secret not in out


def resources_tasks(out):
    """The datadog_resources tasks a run printed, but its argument check (tagged always by Ansible)."""
    return re.findall(r"TASK \[datadog_resources : (?!Validating arguments)([^\]]*)", out)


SKIPPED = "Skipped: the Datadog dashboards, the my_metric monitor and the downtimes, because DD_APP_KEY is not set"


def test_without_the_application_key_the_host_converges_and_the_resources_are_skipped_in_one_line(host):
    """The quick start's minimum, DD_API_KEY alone: site.yml converges the host (here: changed=0, as converged),
    leaves the Datadog resources alone and says so once; a part alone (--tags agent) never asks for the key."""
    rc, out = ansible_playbook("site.yml", unset=("DD_APP_KEY",))
    assert rc == 0, out[-3000:]
    recap = out[out.rindex("PLAY RECAP"):]
    assert "changed=0" in recap and "changed=1" not in recap and "failed=0" in recap, recap
    assert " ".join(out.split()).count(SKIPPED) == 1, out[-3000:]
    assert resources_tasks(out) == [], "the resources role ran without the key"
    rc, out = ansible_playbook("site.yml", "--tags", "agent", unset=("DD_APP_KEY",))
    assert rc == 0, out[-3000:]
    assert "TASK [datadog : " in out and resources_tasks(out) == []


def test_the_optional_traffic_timer_runs_rounds_and_turns_off_again(host, lab):
    """Off by default; traffic_timer_enabled=true arms it and its service runs a round; false disarms it.
    Both booleans are passed as `-e name=value`, which Ansible hands over as strings ("false" is truthy
    unless the role reads it through | bool): each one's false and true, and what each does."""
    timer, service = host.service("lab-traffic.timer"), "lab-traffic.service"
    assert not timer.is_enabled and not timer.is_running
    inserted = f"select n_tup_ins from pg_stat_user_tables where relname = '{lab['lab_table']}'"

    def inserts():
        return int(host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s",
                                     str(lab["lab_postgresql_port"]), lab["lab_database"], inserted))

    out = run_playbook("playbooks/traffic.yml", "-e", "traffic_run=false", "-e", "traffic_timer_enabled=true")
    assert "skipping: [" in task_output(out, "traffic : One bounded round of traffic has run")
    assert timer.is_enabled and timer.is_running
    assert host.check_output("systemctl show -P NextElapseUSecRealtime lab-traffic.timer")
    before = inserts()
    host.run_test("systemctl start %s", service)  # what the timer starts; a oneshot, so it waits
    assert host.check_output("systemctl show -P Result %s", service) == "success"
    assert wait_for(lambda: inserts() > before, timeout=15)

    before = inserts()
    out = run_playbook("playbooks/traffic.yml", "-e", "traffic_run=true", "-e", "traffic_timer_enabled=false",
                       "-e", "traffic_bursts=0", "-e", "traffic_sql_rounds=1", "-e", "traffic_rows=10")
    assert "changed: [" in task_output(out, "traffic : One bounded round of traffic has run")
    # The statistics reach pg_stat_user_tables a moment after the commit (PostgreSQL 10's collector
    # is a process of its own; a loaded machine delays it).
    assert wait_for(lambda: inserts() >= before + 10, timeout=15)
    assert not timer.is_enabled and not timer.is_running


def test_check_mode_with_the_timer_asked_for_passes_before_its_units_exist(host):
    """A fresh host's check mode only previews the units: the timer task can't ask systemd about them.
    The units are removed to make this host fresh for the traffic role, then put back by a run."""
    units = "/etc/systemd/system/lab-traffic.service /etc/systemd/system/lab-traffic.timer"
    with host.sudo():
        host.run_test(f"rm -f {units} && systemctl daemon-reload")
    try:
        rc, out = ansible_playbook("playbooks/traffic.yml", "--check", "-e", "traffic_run=false",
                                   "-e", "traffic_timer_enabled=true")
        assert rc == 0, out[-3000:]
        assert "skipping: [" in task_output(out, "traffic : The timer is on only when asked for")
        assert not host.file("/etc/systemd/system/lab-traffic.timer").exists
    finally:
        run_playbook("playbooks/traffic.yml", "-e", "traffic_run=false")
    assert host.file("/etc/systemd/system/lab-traffic.timer").exists
    assert not host.service("lab-traffic.timer").is_enabled


def test_every_service_comes_back_after_a_container_restart(host, lab):
    """Last on purpose: restarts the whole container (docker restart) and waits for the lab."""
    name = host.backend.get_hostname()
    subprocess.run(["docker", "restart", name], check=True, capture_output=True, timeout=120)
    assert_every_service_answers(host, lab)


# ---- Database Monitoring, the app's queries in APM, runtime metrics and the profiler (issue 32) ----

DBM_WARNINGS = ("Unable to collect statement metrics", "Unable to collect execution plans")


def test_database_monitoring_reaches_datadog_for_the_apps_queries_without_a_warning(host, lab):
    """dbm: true on the agent's postgres check: Datadog's postgresql.queries.count for the lab's database arrives,
    per query_signature, and some of it is the app's own database user (GET /api/db); the agent logs none of
    Datadog's Database Monitoring warnings."""
    app_user = inventory_value(host, "lab_app_db_user")
    http_get(host, lab["lab_app_port"], "/api/db")

    def counted():
        series = [s for s in fake_api_get("/fake/intake")["series"].values()
                  if s["metric"] == "postgresql.queries.count" and f"db:{lab['lab_database']}" in s["tags"]]
        users = {t for s in series for t in s["tags"] if t.startswith("user:")}
        return series if f"user:{app_user}" in users else None

    series = wait_for(counted, timeout=90, step=5)
    assert series, "no postgresql.queries.count for the app's user %s reached the fake API" % app_user
    assert all(any(t.startswith("query_signature:") for t in s["tags"]) for s in series)
    assert {s["host"] for s in series} == {lab["lab_hostname"]}
    with host.sudo():
        log = host.file("/var/log/datadog/agent.log").content_string
    for warning in DBM_WARNINGS:
        assert warning not in log


def test_the_apps_query_span_carries_the_dbm_link_and_its_sql_the_traceparent(host, lab):
    """DD_DBM_PROPAGATION_MODE=full: psycopg's span says it injected the trace context, and PostgreSQL saw the app's
    SQL with the comment Database Monitoring links a sample to its trace with (traceparent, the service)."""
    status, _ = http_get(host, lab["lab_app_port"], "/api/db")
    assert status == 200

    def injected():
        return [s for s in spans(host) if s["name"] == "postgres.query" and s["meta"].get("env") == lab["lab_env"]
                and ("_dd.dbm_trace_injected" in s["meta"] or "_dd.dbm_trace_injected" in s["metrics"])]

    ours = wait_for(injected, timeout=30)
    assert ours, "no postgres.query span with _dd.dbm_trace_injected"
    assert {s["service"] for s in ours} == {lab["lab_service"]}
    # pg_stat_statements keeps the text of a statement's first execution: the app's, comment included.
    app_user = inventory_value(host, "lab_app_db_user")
    texts = psql_as_postgres(host, lab, "select s.query from pg_stat_statements s join pg_roles r on r.oid = s.userid "
                                        f"where r.rolname = '{app_user}'", lab["lab_database"])
    assert re.search(r"traceparent='00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]'", texts), texts
    assert f"ddps='{lab['lab_service']}'" in texts, texts

def test_the_app_sends_runtime_metrics_and_profiles_to_the_agent(host, lab):
    """DD_RUNTIME_METRICS_ENABLED: runtime.python.* on DogStatsD tagged with the app's service; DD_PROFILING_ENABLED:
    the profiler uploads to the agent's /profiling/v1/input (about once a minute), and its sandbox did not stop it."""
    service = f"service:{lab['lab_service']}"

    def runtime():
        with host.sudo():
            lines = host.file("/var/log/datadog/standin/dogstatsd.log").content_string.splitlines()
        return [line for line in lines if line.startswith("runtime.python.") and service in line]

    assert wait_for(runtime, timeout=60, step=5), "no runtime.python.* metric for the app on DogStatsD"

    def profiles():
        with host.sudo():
            path = host.file("/var/log/datadog/standin/profiles.jsonl")
            records = [json.loads(line) for line in path.content_string.splitlines() if line] if path.exists else []
        return [r for r in records if r["event"].get("family") == "python"
                and service in (r["event"].get("tags_profiler") or "")]

    found = wait_for(profiles, timeout=150, step=10)
    assert found, "no profile of the app reached the agent"
    assert any(name.endswith(".pprof") for r in found for name in r["files"]), found[-1]
    journal = host.check_output("journalctl -u %s.service --no-pager -o cat", lab["flask_app_service_name"])
    assert "disabling profiling" not in journal.lower()


def test_the_apps_database_user_reads_the_lab_table_and_nothing_else(host, lab):
    """GET /api/db's own user (lab_app_db_user), over TCP as the app logs in: SELECT on the lab's table works; an
    INSERT into it, a read of another table and a CREATE TABLE are refused; /api/db answers with the table's rows."""
    user, password = inventory_value(host, "lab_app_db_user"), inventory_value(host, "lab_app_db_password")
    table = lab["lab_table"]

    def as_app(sql):
        return host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d %s -XAtc %s", password,
                        str(lab["lab_postgresql_port"]), user, lab["lab_database"], sql)

    counted = as_app(f"select count(*) from {table}")
    assert counted.rc == 0 and int(counted.stdout) >= 0, counted.stderr
    for sql in (f"insert into {table} select 1, 2.5, 3.5", "select count(*) from pg_authid",
                "create table app_was_here (x int)"):
        refused = as_app(sql)
        assert refused.rc != 0 and "permission denied" in refused.stderr, (sql, refused.stdout, refused.stderr)
    status, body = http_get(host, lab["lab_app_port"], "/api/db")
    assert status == 200, body
    assert json.loads(body)["table"] == table
