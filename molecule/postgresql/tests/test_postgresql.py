"""PostgreSQL as the lab needs it: served, reachable by the monitoring user only with its password, set up for
Database Monitoring."""
import hashlib
import json

import pytest
from lab_testinfra import ROOT, ansible_playbook, inventory_values, task_output


@pytest.fixture(scope="module")
def pg(host):
    v = inventory_values(host, ["postgresql_port", "postgresql_monitoring_user", "postgresql_monitoring_password",
                                "postgresql_database", "postgresql_table"])
    return {"port": str(v["postgresql_port"]), "user": v["postgresql_monitoring_user"],
            "password": v["postgresql_monitoring_password"], "database": v["postgresql_database"],
            "table": v["postgresql_table"]}


def psql_tcp(host, pg, sql, password=None, database="postgres"):
    return host.run(
        "PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d %s -XAtc %s",
        pg["password"] if password is None else password, pg["port"], pg["user"], database, sql,
    )


def psql_admin(host, pg, sql):
    out = host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s", pg["port"], pg["database"], sql)
    return out.strip()


def test_service_active_enabled_and_listening(host, pg):
    svc = host.service("postgresql")
    assert svc.is_running and svc.is_enabled
    assert host.socket(f"tcp://127.0.0.1:{pg['port']}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{pg['port']}").is_listening


def test_monitoring_user_logs_in_over_tcp_and_reads_pg_stat_database(host, pg):
    res = psql_tcp(host, pg, "select count(*) from pg_stat_database")
    assert res.rc == 0, res.stderr
    assert int(res.stdout.strip()) >= 1
    member = psql_tcp(host, pg, "select pg_has_role(current_user, 'pg_monitor', 'member')")
    assert member.stdout.strip() == "t"


def test_wrong_password_is_refused(host, pg):
    res = psql_tcp(host, pg, "select 1", password="not-the-password")
    assert res.rc != 0
    assert "password authentication failed" in res.stderr


def test_password_is_stored_as_scram(host, pg):
    stored = psql_admin(host, pg, f"select rolpassword from pg_authid where rolname = '{pg['user']}'")
    assert stored.startswith("SCRAM-SHA-256$")


def test_other_users_cannot_log_in_over_tcp(host, pg):
    res = host.run("PGPASSWORD=x psql -h 127.0.0.1 -p %s -U postgres -XAtc 'select 1'", pg["port"])
    assert res.rc != 0
    assert "no pg_hba.conf entry" in res.stderr


def test_lab_table_has_the_seed_columns(host, pg):
    cols = psql_admin(host, pg, (
        "select column_name || ':' || data_type from information_schema.columns "
        f"where table_name = '{pg['table']}' order by ordinal_position"
    ))
    assert cols.splitlines() == ["num1:bigint", "num2:double precision", "num3:double precision"]


def test_initial_rows_loaded_once_and_kept_across_converges(host, pg):
    # molecule.yml asks for 1000 rows; the idempotence converge ran since: not reloaded, not truncated.
    assert psql_admin(host, pg, f"select count(*) from {pg['table']}") == "1000"


def test_the_first_converge_restarted_the_server_once_for_the_preload_and_every_setting_applies(host, pg):
    """The drop-in preloads pg_stat_statements (postgresql_dbm, on in the lab), which the packaged server can't take
    on a reload: the handler restarted it after the drop-in was written, and no setting is left unapplied."""
    conf = host.check_output("sudo -u postgres psql -p %s -XAtc 'show config_file'", pg["port"])
    drop_in = conf.rsplit("/", 1)[0] + "/conf.d/50-lab.conf"
    written = host.file(drop_in).mtime.timestamp()
    started = float(psql_admin(host, pg, "select extract(epoch from pg_postmaster_start_time())"))
    assert started > written, "the server was not restarted after the drop-in was written"
    assert psql_admin(host, pg, "select count(*) from pg_file_settings where error is not null") == "0"
    settings = psql_admin(host, pg, (
        "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings where name in "
        "('shared_preload_libraries', 'track_activity_query_size', 'pg_stat_statements.track', "
        "'pg_stat_statements.max', 'track_io_timing')"))
    assert settings == ("pg_stat_statements.max=10000 pg_stat_statements.track=all "
                        "shared_preload_libraries=pg_stat_statements track_activity_query_size=4096 track_io_timing=on")


@pytest.mark.parametrize("which", ["postgres", "the lab's"])
def test_the_monitoring_user_reads_statements_and_gets_plans_in_each_database(host, pg, which):
    """Database Monitoring's two reads, as the agent makes them: pg_stat_statements (every user's statements,
    through pg_monitor) and a plan from datadog.explain_statement, which runs EXPLAIN as postgres."""
    database = "postgres" if which == "postgres" else pg["database"]
    psql_admin(host, pg, f"select count(*) from {pg['table']}")
    res = psql_tcp(host, pg, f"select count(*) from pg_stat_statements where query like '%{pg['table']}%'",
                   database=database)
    assert res.rc == 0, res.stderr
    assert int(res.stdout) > 0
    res = psql_tcp(host, pg, "select datadog.explain_statement('select * from pg_class')", database=database)
    assert res.rc == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan[0]["Plan"]["Node Type"] == "Seq Scan", plan


def test_the_explain_function_is_datadogs_owned_by_postgres_and_marked_by_the_role(host, pg):
    row = psql_admin(host, pg, (
        "select pg_get_userbyid(p.proowner), p.prosecdef, p.proisstrict, l.lanname, "
        "pg_get_function_arguments(p.oid), obj_description(p.oid, 'pg_proc') "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang "
        "where n.nspname = 'datadog' and p.proname = 'explain_statement'"))
    owner, definer, strict, language, arguments, mark = row.split("|")
    assert (owner, definer, strict, language) == ("postgres", "t", "t", "plpgsql")
    assert arguments == "l_query text, OUT explain json"
    # The file lookup reads it without its last newline.
    sql = (ROOT / "roles/postgresql/files/explain_statement.sql").read_text().rstrip("\n")
    assert mark.endswith(f"(sha1 {hashlib.sha1(sql.encode()).hexdigest()})"), mark


def test_the_monitoring_user_can_use_the_datadog_schema_but_not_write_in_it(host, pg):
    res = psql_tcp(host, pg, "create table datadog.not_allowed (i int)", database=pg["database"])
    assert res.rc != 0
    assert "permission denied for schema datadog" in res.stderr


def test_a_new_port_restarts_the_server_onto_it_and_the_old_one_back(host, pg):
    other = int(pg["port"]) + 1
    try:
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host, extra_vars={"postgresql_port": other})
        assert rc == 0, out[-3000:]
        assert "changed: [" in task_output(out, "postgresql : Restart PostgreSQL"), out[-3000:]
        assert host.socket(f"tcp://127.0.0.1:{other}").is_listening
        assert not host.socket(f"tcp://127.0.0.1:{pg['port']}").is_listening
    finally:
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host)
    assert rc == 0, out[-3000:]
    assert host.socket(f"tcp://127.0.0.1:{pg['port']}").is_listening
    assert psql_tcp(host, pg, "select 1").stdout.strip() == "1"


def test_a_cluster_stopped_by_hand_is_started_again(host, pg):
    """Debian's "postgresql" unit is an umbrella that stays active when the cluster's own unit is stopped: the
    role starts the cluster by its own name, postgresql@<major>-main."""
    major = host.check_output("pg_lsclusters --no-header").split()[0]
    cluster = f"postgresql@{major}-main"
    host.run_test("systemctl stop %s", cluster)
    assert not host.service(cluster).is_running
    assert host.service("postgresql").is_running, "the umbrella unit is expected to stay active"
    rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host)
    assert rc == 0, out[-3000:]
    assert "changed: [" in task_output(out, "postgresql : The lab's cluster is running"), out[-3000:]
    assert host.service(cluster).is_running
    assert psql_tcp(host, pg, "select 1").stdout.strip() == "1"


def test_a_failing_monitoring_user_task_says_why_without_the_password(host, pg):
    """The user's task is no_log (its password): its error is still told, with the password masked. PostgreSQL
    refuses a role name starting with pg_, which it reserves."""
    try:
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host,
                                   extra_vars={"postgresql_monitoring_user": "pg_lab_monitor"})
        assert rc != 0, out[-3000:]
        message = " ".join(task_output(out, "postgresql : Monitoring user was created or is up to date").split())
        assert "The monitoring user pg_lab_monitor could not be created or updated:" in message, message
        assert "reserved" in message, message
        assert pg["password"] not in out
    finally:
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host)
    assert rc == 0, out[-3000:]
    assert psql_tcp(host, pg, "select 1").stdout.strip() == "1"


def test_database_monitoring_follows_its_boolean_passed_as_a_string(host, pg):
    """postgresql_dbm=false: the preload goes (a restart) and a database made then gets none of the setup;
    postgresql_dbm=true puts the preload back (a restart)."""
    try:
        rc, out = ansible_playbook("playbooks/database.yml", "-e", "postgresql_dbm=false", limit=host.backend.host,
                                   extra_vars={"postgresql_database": "dbm_off"})
        assert rc == 0, out[-3000:]
        assert "changed: [" in task_output(out, "postgresql : Restart PostgreSQL"), out[-3000:]
        assert task_output(out, "postgresql : Schema datadog exists").split("*\n", 1)[1].startswith("skipping: ["), \
            out[-3000:]
        assert psql_admin(host, pg, "show shared_preload_libraries") == ""
        assert host.check_output("sudo -u postgres psql -p %s -d dbm_off -XAtc %s", pg["port"],
                                 "select count(*) from pg_namespace where nspname = 'datadog'") == "0"
    finally:
        rc, out = ansible_playbook("playbooks/database.yml", "-e", "postgresql_dbm=true", limit=host.backend.host)
    assert rc == 0, out[-3000:]
    assert "changed: [" in task_output(out, "postgresql : Restart PostgreSQL"), out[-3000:]
    assert psql_admin(host, pg, "show shared_preload_libraries") == "pg_stat_statements"
