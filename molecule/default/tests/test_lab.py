"""The whole lab, end to end: site.yml converged, playbooks/traffic.yml run (side_effect).

Written against the agent's CLI, files and ports, so the same checks hold on a real VM; only the
trace-intake record (/var/log/datadog/standin/) and the fake API's state are the doubles' own.
"""
import json
import subprocess
import time

import pytest
from conftest import fake_api_get

TRACES = "/var/log/datadog/standin/traces.jsonl"


def wait_for(check, timeout=30, step=1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


def spans(host):
    return [json.loads(line) for line in host.file(TRACES).content_string.splitlines() if line.strip()]


def test_spans_of_all_three_routes_reached_the_intake(host, lab):
    wanted = {"GET /", "GET /api/apm", "GET /api/trace"}
    ours = wait_for(lambda: [s for s in spans(host) if s["service"] == lab["lab_service"]
                             and s["meta"].get("env") == lab["lab_env"]])
    assert wanted <= {s["resource"] for s in ours}
    tags = {k for s in ours for k, v in s["meta"].items() if k.startswith("from_") and v == "true"}
    assert tags == {"from_entry_route", "from_apm_route", "from_trace_route"}


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


def test_postgres_check_logs_in_and_sees_the_lab_table(host, lab):
    res = host.run("datadog-agent check postgres")
    assert res.rc == 0, res.stdout + res.stderr
    assert "postgresql.table.count" in res.stdout or "postgresql.connections" in res.stdout
    assert lab["lab_table"] in res.stdout


def test_dashboards_monitor_and_downtimes_exist_in_the_api():
    state = fake_api_get("/fake/state")
    titles = {d["title"] for d in state["dashboards"].values()}
    assert len(titles) == 2, titles
    assert any("my_metric" in m["query"] for m in state["monitors"].values())
    live = [d for d in state["downtimes"].values() if d["attributes"].get("status") != "canceled"]
    assert len(live) == 2


def test_check_mode_on_the_converged_lab_changes_nothing_and_prints_no_secret(host, lab):
    """`ansible-playbook site.yml --check --diff -vvv` against this instance: changed=0, no key."""
    import os

    env = dict(os.environ)
    inventory = os.path.join(env["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    project = env["MOLECULE_PROJECT_DIRECTORY"]
    res = subprocess.run(
        ["ansible-playbook", "-i", inventory, f"{project}/site.yml", "--check", "--diff", "-vvv"],
        env=env, capture_output=True, text=True, timeout=600, cwd=project,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    recap = out[out.rindex("PLAY RECAP"):]
    assert "changed=0" in recap and "changed=1" not in recap, recap
    for secret in (env["DD_API_KEY"], env["DD_APP_KEY"], lab["lab_monitoring_password"]):
        assert secret not in out


def test_every_service_comes_back_after_a_container_restart(host, lab):
    """Last on purpose: restarts the whole container (docker restart) and waits for the lab."""
    name = host.backend.get_hostname()
    subprocess.run(["docker", "restart", name], check=True, capture_output=True, timeout=120)
    running = wait_for(lambda: host.run("systemctl is-system-running").stdout.strip()
                       in ("running", "degraded"), timeout=60)
    assert running
    for unit in ("postgresql", "datadog-agent", lab["flask_app_service_name"]):
        assert wait_for(lambda: host.service(unit).is_running, timeout=30), unit
    url = f"http://127.0.0.1:{lab['lab_app_port']}/api/apm"
    assert wait_for(lambda: host.run("python3 -c %s", "import urllib.request,sys; "
                    f"sys.stdout.write(urllib.request.urlopen('{url}').read().decode())").stdout
                    == "Getting APM Started", timeout=30)
    login = host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d postgres -XAtc 'select 1'",
                     lab["lab_monitoring_password"], str(lab["lab_postgresql_port"]), lab["lab_monitoring_user"])
    assert login.rc == 0, login.stderr
