"""The whole lab, end to end: site.yml converged, playbooks/traffic.yml run (side_effect).

Written against the agent's CLI, files and ports, so the same checks hold on a real VM; only the
trace-intake record (/var/log/datadog/standin/) and the fake API's state are the doubles' own.
"""
import json
import os
import subprocess

from conftest import fake_api_get
from lab_checks import assert_every_service_answers, wait_for

TRACES = "/var/log/datadog/standin/traces.jsonl"


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


def run_playbook(playbook, *args):
    """ansible-playbook on this instance, with the scenario's inventory and environment."""
    env = dict(os.environ)
    inventory = os.path.join(env["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    project = env["MOLECULE_PROJECT_DIRECTORY"]
    res = subprocess.run(["ansible-playbook", "-i", inventory, f"{project}/{playbook}", *args],
                         env=env, capture_output=True, text=True, timeout=900, cwd=project)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    return out


def test_check_mode_on_the_converged_lab_changes_nothing_and_prints_no_secret(host, lab):
    """`ansible-playbook site.yml --check --diff -vvv` against this instance: changed=0, no key."""
    out = run_playbook("site.yml", "--check", "--diff", "-vvv")
    recap = out[out.rindex("PLAY RECAP"):]
    assert "changed=0" in recap and "changed=1" not in recap, recap
    for secret in (os.environ["DD_API_KEY"], os.environ["DD_APP_KEY"], lab["lab_monitoring_password"]):
        assert secret not in out


def test_the_optional_traffic_timer_runs_rounds_and_turns_off_again(host, lab):
    """Off by default; traffic_timer_enabled=true arms it and its service runs a round; false disarms it."""
    timer, service = host.service("lab-traffic.timer"), "lab-traffic.service"
    assert not timer.is_enabled and not timer.is_running
    inserted = f"select n_tup_ins from pg_stat_user_tables where relname = '{lab['lab_table']}'"

    def inserts():
        return int(host.check_output("sudo -u postgres psql -p %s -d %s -XAtc %s",
                                     str(lab["lab_postgresql_port"]), lab["lab_database"], inserted))

    run_playbook("playbooks/traffic.yml", "-e", '{"traffic_run": false, "traffic_timer_enabled": true}')
    assert timer.is_enabled and timer.is_running
    assert host.check_output("systemctl show -P NextElapseUSecRealtime lab-traffic.timer")
    before = inserts()
    host.run_test("systemctl start %s", service)  # what the timer starts; a oneshot, so it waits
    assert host.check_output("systemctl show -P Result %s", service) == "success"
    assert wait_for(lambda: inserts() > before, timeout=15)

    run_playbook("playbooks/traffic.yml", "-e", '{"traffic_run": false, "traffic_timer_enabled": false}')
    assert not timer.is_enabled and not timer.is_running


def test_every_service_comes_back_after_a_container_restart(host, lab):
    """Last on purpose: restarts the whole container (docker restart) and waits for the lab."""
    name = host.backend.get_hostname()
    subprocess.run(["docker", "restart", name], check=True, capture_output=True, timeout=120)
    assert_every_service_answers(host, lab)
