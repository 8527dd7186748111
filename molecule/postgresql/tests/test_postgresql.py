"""PostgreSQL as the lab needs it: served, reachable by the monitoring user only with its password."""
import pytest
from lab_testinfra import ansible_playbook, inventory_values, task_output


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


def test_the_first_converge_applied_the_drop_in_without_restarting_the_server(host, pg):
    """The drop-in's settings were what the packaged server already ran with (port, listen_addresses),
    or could take on a reload: the server that the package started is still the one running."""
    conf = host.check_output("sudo -u postgres psql -p %s -XAtc 'show config_file'", pg["port"])
    drop_in = conf.rsplit("/", 1)[0] + "/conf.d/50-lab.conf"
    written = host.file(drop_in).mtime.timestamp()
    started = float(psql_admin(host, pg, "select extract(epoch from pg_postmaster_start_time())"))
    assert started < written, "the server was restarted after the drop-in was written"
    assert psql_admin(host, pg, "select count(*) from pg_file_settings where error is not null") == "0"


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
