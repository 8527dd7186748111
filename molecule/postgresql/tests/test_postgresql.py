"""PostgreSQL as the lab needs it: served, reachable by the monitoring user only with its password, set up for
Database Monitoring; the app's own user reads the lab's table and nothing else."""
import hashlib
import json
import re

import pytest
from lab_testinfra import ROOT, ansible_playbook, inventory_values, task_output


@pytest.fixture(scope="module")
def pg(host):
    v = inventory_values(host, ["postgresql_port", "postgresql_monitoring_user", "postgresql_monitoring_password",
                                "postgresql_database", "postgresql_table"])
    return {"port": str(v["postgresql_port"]), "user": v["postgresql_monitoring_user"],
            "password": v["postgresql_monitoring_password"], "database": v["postgresql_database"],
            "table": v["postgresql_table"]}


@pytest.fixture(scope="module")
def app_user(host, pg):
    """The app's database user as the inventory names it (postgresql_app_user, from lab.yml), and its password."""
    v = inventory_values(host, ["postgresql_app_user", "postgresql_app_password"])
    assert v["postgresql_app_user"], "the lab's inventory names an app database user"
    return dict(pg, user=v["postgresql_app_user"], password=v["postgresql_app_password"])


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


def test_the_app_user_logs_in_over_tcp_and_reads_the_lab_table(host, pg, app_user):
    # (Over 127.0.0.1: a container may have no ::1; the pg_hba test below reads both lines.)
    res = psql_tcp(host, app_user, f"select count(*) from {pg['table']}", database=pg["database"])
    assert res.rc == 0, res.stderr
    assert int(res.stdout) == int(psql_admin(host, pg, f"select count(*) from {pg['table']}"))


# PostgreSQL 10 says "permission denied for relation", 11 and later "for table".
DENIED = re.compile(r"permission denied for (table|relation|schema) (\S+)")
# A write in a transaction rolled back: the row count stays the one test_initial_rows_... expects.
INSERT = "begin; insert into {table} (num1, num2, num3) values (1, 1, 1); rollback"


def denied(res):
    """What PostgreSQL said it refused: the table or schema's name, or None when it refused nothing."""
    match = DENIED.search(res.stderr)
    return match.group(2) if res.rc != 0 and match else None


@pytest.mark.parametrize("sql, refused", [
    (INSERT, "{table}"),
    ("begin; update {table} set num1 = 0; rollback", "{table}"),
    ("begin; delete from {table}; rollback", "{table}"),
    ("select count(*) from pg_authid", "pg_authid"),
    ("create table app_made (i int)", "public"),
], ids=["insert", "update", "delete", "pg_authid", "create table"])
def test_the_app_user_can_do_nothing_else_in_the_lab_database(host, pg, app_user, sql, refused):
    res = psql_tcp(host, app_user, sql.format(table=pg["table"]), database=pg["database"])
    assert denied(res) == refused.format(table=pg["table"]), res.stdout + res.stderr


def test_the_app_user_cannot_read_another_table_of_the_lab_database(host, pg, app_user):
    psql_admin(host, pg, "create table if not exists app_cannot_read (i int); insert into app_cannot_read values (1)")
    try:
        res = psql_tcp(host, app_user, "select * from app_cannot_read", database=pg["database"])
        assert denied(res) == "app_cannot_read", res.stdout + res.stderr
    finally:
        psql_admin(host, pg, "drop table app_cannot_read")


def test_the_app_user_holds_select_on_the_lab_table_and_no_role_attribute(host, pg, app_user):
    grants = psql_admin(host, pg, (
        "select string_agg(privilege_type, ',' order by privilege_type) from information_schema.role_table_grants "
        f"where grantee = '{app_user['user']}'"))
    assert grants == "SELECT"
    table = psql_admin(host, pg, (
        f"select table_name from information_schema.role_table_grants where grantee = '{app_user['user']}'"))
    assert table == pg["table"]
    attributes = psql_admin(host, pg, (
        "select rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
        f"left(rolpassword, 14) from pg_authid where rolname = '{app_user['user']}'"))
    assert attributes == "t|f|f|f|f|f|SCRAM-SHA-256$"
    member_of = psql_admin(host, pg, (
        f"select count(*) from pg_auth_members m join pg_roles r on r.oid = m.member where r.rolname = '{app_user['user']}'"))
    assert member_of == "0"


def test_the_app_users_pg_hba_lines_are_tcp_from_localhost_into_the_lab_database(host, pg, app_user):
    rules = psql_admin(host, pg, (
        "select type, array_to_string(database, ','), address, netmask, auth_method from pg_hba_file_rules "
        f"where '{app_user['user']}' = any(user_name) order by line_number"))
    assert rules.splitlines() == [
        f"host|{pg['database']}|127.0.0.1|255.255.255.255|scram-sha-256",
        f"host|{pg['database']}|::1|ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff|scram-sha-256",
    ]


@pytest.mark.parametrize("how", ["another database over tcp", "the socket", "a wrong password"])
def test_the_app_user_gets_in_no_other_way(host, pg, app_user, how):
    if how == "another database over tcp":
        res = psql_tcp(host, app_user, "select 1", database="postgres")
        expected = "no pg_hba.conf entry"
    elif how == "the socket":
        res = host.run("PGPASSWORD=%s psql -p %s -U %s -d %s -XAtc 'select 1'", app_user["password"], pg["port"],
                       app_user["user"], pg["database"])
        expected = "Peer authentication failed"
    else:
        res = psql_tcp(host, app_user, "select 1", password="not-the-password", database=pg["database"])
        expected = "password authentication failed"
    assert res.rc != 0, res.stdout
    assert expected in res.stderr


def test_a_write_granted_to_the_app_user_by_hand_is_taken_back(host, pg, app_user):
    insert = INSERT.format(table=pg["table"])
    psql_admin(host, pg, f"grant insert, delete on {pg['table']} to {app_user['user']}")
    try:
        res = psql_tcp(host, app_user, insert, database=pg["database"])
        assert res.rc == 0, res.stderr
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host)
        assert rc == 0, out[-3000:]
        assert "changed: [" in task_output(out, "postgresql : App database user cannot write to the lab's table"), \
            out[-3000:]
        assert denied(psql_tcp(host, app_user, insert, database=pg["database"])) == pg["table"]
    finally:
        psql_admin(host, pg, f"revoke insert, delete on {pg['table']} from {app_user['user']}")
