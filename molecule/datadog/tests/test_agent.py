"""The Datadog Agent as the datadog role leaves it, read through the agent's own files and CLI.

Only the real agent's contract is used (its paths, the dd-agent user, `datadog-agent check --json`,
`configcheck`, `status`), so this file passes against the real agent on a VM too. Expected values
come from the inventory the host was converged with, never retyped here.
"""
import json
import re

import pytest
import yaml
from lab_testinfra import ansible_playbook

CONF = "/etc/datadog-agent"


def read_yaml(host, path):
    with host.sudo():
        return yaml.safe_load(host.file(path).content_string)


def agent_check(host, name, *flags):
    """`datadog-agent check NAME --json` as dd-agent: one collector entry per instance."""
    with host.sudo("dd-agent"):
        res = host.run("datadog-agent check %s --json " + " ".join(flags), name)
    assert res.rc == 0, res.stdout + res.stderr
    # The agent may log before the JSON; the JSON is a list that ends on a line of its own.
    match = re.search(r"^\[.*^\]", res.stdout, re.MULTILINE | re.DOTALL)
    assert match, res.stdout
    return json.loads(match.group(0))


def series(collectors, metric):
    return [s for c in collectors for s in c["aggregator"]["metrics"] if s["metric"] == metric]


def test_pinned_version_installed_and_held(host, lab):
    pkg = host.package("datadog-agent")
    assert pkg.is_installed
    assert pkg.version == f"1:{lab['datadog_agent_version']}-1"
    assert "datadog-agent" in host.check_output("apt-mark showhold").split()


def test_apt_upgrade_would_not_move_the_held_agent(host):
    policy = host.check_output("apt-cache policy datadog-agent")
    installed = re.search(r"Installed: (\S+)", policy).group(1)
    candidate = re.search(r"Candidate: (\S+)", policy).group(1)
    assert candidate != installed, "the repository should offer a newer agent for this test to mean anything"
    simulated = host.check_output("apt-get --simulate upgrade")
    assert not re.search(r"^Inst datadog-agent ", simulated, re.MULTILINE), simulated


def test_source_is_signed_by_the_keyring_datadog_signing_keys_maintains(host):
    source = host.file("/etc/apt/sources.list.d/datadog.list")
    assert re.search(r"^deb \[signed-by=/usr/share/keyrings/datadog-archive-keyring\.gpg\] \S+ stable 7$",
                     source.content_string, re.MULTILINE), source.content_string
    keyring = host.file("/usr/share/keyrings/datadog-archive-keyring.gpg")
    assert keyring.is_file and keyring.mode == 0o644
    assert host.check_output("dpkg -S %s", keyring.path).startswith("datadog-signing-keys:")
    assert not host.file("/etc/apt/trusted.gpg").exists, "apt-key's legacy keyring must not be used"
    # Only the dearmored keyring is used: the armored download is not left beside it.
    assert host.check_output("ls /usr/share/keyrings").split().count("datadog-archive-keyring.asc") == 0


@pytest.mark.parametrize("path,mode", [
    (f"{CONF}/datadog.yaml", 0o640),
    (f"{CONF}/conf.d/postgres.d/conf.yaml", 0o640),
    (f"{CONF}/conf.d/custom_random.d/conf.yaml", 0o640),
    (f"{CONF}/checks.d/custom_random.py", 0o644),
])
def test_files_owned_by_dd_agent(host, path, mode):
    f = host.file(path)
    assert f.is_file
    assert (f.user, f.group, f.mode) == ("dd-agent", "dd-agent", mode)


def test_datadog_yaml(host, lab):
    cfg = read_yaml(host, f"{CONF}/datadog.yaml")
    assert cfg["api_key"]
    assert cfg["site"] == lab["datadog_site"]
    assert cfg["hostname"] == lab["lab_hostname"]
    assert isinstance(cfg["tags"], list) and cfg["tags"] == lab["lab_host_tags"]
    assert cfg["apm_config"]["enabled"] is True
    # Unified service tagging: the agent's env; no global service tag (each service names itself).
    assert cfg["env"] == lab["lab_env"]
    assert "service" not in cfg and not any(str(t).startswith("service:") for t in cfg["tags"])


def test_postgres_instance_watches_the_lab_table(host, lab):
    conf = read_yaml(host, f"{CONF}/conf.d/postgres.d/conf.yaml")
    (instance,) = conf["instances"]
    assert instance["username"] == lab["lab_monitoring_user"]
    assert instance["dbname"] == lab["lab_database"]
    assert instance["password"]
    names = [r if isinstance(r, str) else r["relation_name"] for r in instance["relations"]]
    assert lab["lab_table"] in names
    assert instance["dbm"] is lab["lab_dbm"]


def test_custom_random_collected_every_45_seconds(host):
    conf = read_yaml(host, f"{CONF}/conf.d/custom_random.d/conf.yaml")
    assert [i["min_collection_interval"] for i in conf["instances"]] == [45]
    assert "min_collection_interval" not in (conf.get("init_config") or {})


def test_services_active_and_listening(host, lab):
    agent = host.service("datadog-agent")
    assert agent.is_running and agent.is_enabled
    assert host.service("datadog-agent-trace").is_running
    assert host.socket(f"tcp://127.0.0.1:{lab['lab_apm_port']}").is_listening
    assert host.socket(f"udp://127.0.0.1:{lab['lab_dogstatsd_port']}").is_listening


def test_agent_runs_as_dd_agent(host):
    pid = host.check_output("systemctl show -p MainPID --value datadog-agent")
    assert host.check_output("ps -o user= -p %s", pid).strip() == "dd-agent"


def test_check_custom_random_reports_my_metric(host, lab):
    collectors = agent_check(host, "custom_random")
    assert [c["runner"]["LastError"] for c in collectors] == [""]
    (metric,) = series(collectors, "my_metric")
    assert metric["type"] == "gauge"
    assert "type:custom" in metric["tags"]
    assert metric["host"] == lab["lab_hostname"]
    ((_, value),) = metric["points"]
    assert 1 <= value <= 1000


def test_check_postgres_logs_in_and_sees_the_lab_table(host, lab):
    collectors = agent_check(host, "postgres", "--check-rate")
    assert [c["runner"]["LastError"] for c in collectors] == [""]
    can_connect = [sc for c in collectors for sc in c["aggregator"]["service_checks"]
                   if sc["check"] == "postgres.can_connect"]
    assert can_connect and all(sc["status"] == 0 for sc in can_connect)
    table_tags = {f"db:{lab['lab_database']}", f"table:{lab['lab_table']}", "schema:public"}
    # The metrics the lab's dashboards graph, for the lab's table (rates need --check-rate).
    for metric in ["postgresql.live_rows", "postgresql.dead_rows", "postgresql.heap_blocks_read",
                   "postgresql.heap_blocks_hit", "postgresql.rows_inserted", "postgresql.rows_deleted"]:
        assert any(table_tags <= set(s["tags"]) for s in series(collectors, metric)), metric
    counts = series(collectors, "postgresql.table.count")
    assert any({f"db:{lab['lab_database']}", "schema:public"} <= set(s["tags"]) for s in counts)


def test_configcheck_lists_both_checks_and_hides_the_password(host):
    conf = read_yaml(host, f"{CONF}/conf.d/postgres.d/conf.yaml")
    with host.sudo("dd-agent"):
        out = host.check_output("datadog-agent configcheck")
    assert "=== postgres check ===" in out
    assert "=== custom_random check ===" in out
    leaked = conf["instances"][0]["password"] in out
    assert not leaked, "configcheck printed the postgres password"


def test_status_names_the_lab_hostname(host, lab):
    with host.sudo("dd-agent"):
        out = host.check_output("datadog-agent status")
    assert re.search(rf"^\s+hostname: {re.escape(lab['lab_hostname'])}$", out, re.MULTILINE), out


def test_agent_refuses_to_run_without_an_api_key(host):
    with host.sudo():
        confdir = host.check_output("mktemp -d /var/tmp/dd-no-key.XXXXXX")
        host.run_test("printf 'hostname: no-key.test\\n' > %s/datadog.yaml", confdir)
        res = host.run("timeout 60 datadog-agent run -c %s", confdir)
        host.run("rm -rf %s", confdir)
    assert res.rc not in (0, 124), "the agent kept running without an API key"
    assert "API key" in res.stdout + res.stderr


# ---- Database Monitoring (dbm: true) --------------------------------------------------------

DBM_WARNINGS = {
    # The setup piece removed: what Datadog's check says, and the troubleshooting anchor it names.
    "preload": ("Unable to collect statement metrics because pg_stat_statements extension is not loaded in "
                "database '{db}'", "pg-stat-statements-not-loaded"),
    "extension": ("Unable to collect statement metrics because pg_stat_statements is not created in database "
                  "'{db}'", "pg-stat-statements-not-created"),
    "explain_function": ("Unable to collect execution plans in dbname={db}. Check that the function "
                         "datadog.explain_statement exists in the database", "undefined-explain-function"),
}


def psql(host, lab, sql, database=None):
    return host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s", str(lab["lab_postgresql_port"]),
                             database or lab["lab_database"], sql)


def in_background(host, lab, sql, seconds):
    """SQL run by postgres in the lab's database for about SECONDS, in the background (the agent samples it)."""
    loop = (f"end=$(($(date +%s) + {seconds})); while [ $(date +%s) -lt $end ]; do "
            f"psql -p {lab['lab_postgresql_port']} -d {lab['lab_database']} -XAtqc \"{sql}\" >/dev/null; sleep 0.2; done")
    host.run("sudo -u postgres setsid sh -c %s >/dev/null 2>&1 &", loop)


def dbm_check(host, lab):
    """`check postgres --check-rate` while statements run, so that its second run has differences to send."""
    table = lab["lab_table"]
    in_background(host, lab, f"SELECT count(*) FROM {table}", 6)
    # One statement that runs through both runs of the check: each samples and explains it.
    in_background(host, lab, f"SELECT pg_sleep(8), (SELECT max(num1) FROM {table})", 1)
    host.run("sleep 1")
    return agent_check(host, "postgres", "--check-rate")


def events(collectors, track):
    return [e for c in collectors for e in c["aggregator"].get("event_platform_events", {}).get(track, [])]


def test_database_monitoring_sends_the_statements_query_metrics_and_their_plans(host, lab):
    """With dbm: true: the differences of pg_stat_statements between two runs (dbm-metrics, per query_signature,
    db and user), a plan from datadog.explain_statement for a running statement (dbm-samples), and no warning."""
    collectors = dbm_check(host, lab)
    assert [c["runner"]["LastWarnings"] for c in collectors] == [[]]
    assert [c["runner"]["LastError"] for c in collectors] == [""]
    table = lab["lab_table"]
    (metrics,) = events(collectors, "dbm-metrics")
    assert metrics["host"] == lab["lab_hostname"]
    assert not any(t.startswith("db:") for t in metrics["tags"])  # the row's datname says which database
    ours = [r for r in metrics["postgres_rows"]
            if r["query"] == f"SELECT count(*) FROM {table}" and r["datname"] == lab["lab_database"]]
    assert len(ours) == 1, metrics["postgres_rows"]
    assert ours[0]["rolname"] == "postgres" and ours[0]["calls"] >= 1 and ours[0]["rows"] == ours[0]["calls"]
    assert re.fullmatch(r"[0-9a-f]{1,16}", ours[0]["query_signature"])
    plans = [e for e in events(collectors, "dbm-samples") if e["dbm_type"] == "plan" and table in e["db"]["statement"]]
    assert plans, events(collectors, "dbm-samples")
    assert f"Relation Name\": \"{table}\"" in plans[0]["db"]["plan"]["definition"]
    gauge = series(collectors, "postgresql.pg_stat_statements.max")
    assert gauge and gauge[0]["points"][0][1] > 0


def test_the_agent_log_has_none_of_datadogs_database_monitoring_warnings(host):
    """The agent's own runs (every 15 s since the converge) found the setup whole. Runs before the test below,
    which breaks the setup on purpose."""
    with host.sudo():
        log = host.file("/var/log/datadog/agent.log").content_string
    assert "Unable to collect statement metrics" not in log
    assert "Unable to collect execution plans" not in log


@pytest.mark.parametrize("piece", sorted(DBM_WARNINGS))
def test_a_missing_piece_of_the_database_setup_gives_datadogs_warning(host, lab, piece):
    """Each piece the postgresql role makes for Database Monitoring, removed: the check says what Datadog's says,
    with its troubleshooting anchor and tags; put back by the role's converge, it is silent."""
    db = lab["lab_database"]
    if piece == "preload":
        # The role without Database Monitoring: its handler restarts the server without the preload; the
        # extension, made before, stays.
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host,
                                   extra_vars={"postgresql_dbm": False})
        assert rc == 0, out[-3000:]
        assert psql(host, lab, "show shared_preload_libraries", "postgres") == ""
    elif piece == "extension":
        psql(host, lab, "DROP EXTENSION pg_stat_statements")
    else:
        psql(host, lab, "DROP FUNCTION datadog.explain_statement(text)")
    try:
        collectors = dbm_check(host, lab)
        assert [c["runner"]["LastError"] for c in collectors] == [""]
        message, code = DBM_WARNINGS[piece]
        (warning,) = collectors[0]["runner"]["LastWarnings"]
        text, tags = warning.rsplit("\n", 1)
        assert text.startswith(message.format(db=db)), text
        assert f"https://docs.datadoghq.com/database_monitoring/setup_postgres/troubleshooting#{code}" in text
        assert tags == f"code={code} dbname={db} host={lab['lab_hostname']}"
        assert not events(collectors, "dbm-metrics" if piece != "explain_function" else "dbm-samples")
    finally:
        rc, out = ansible_playbook("playbooks/database.yml", limit=host.backend.host)
        assert rc == 0, out[-3000:]
    assert dbm_check(host, lab)[0]["runner"]["LastWarnings"] == []
