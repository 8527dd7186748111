"""The datadog role run again from the controller, against the converged host: what it prints,
what it refuses, and a deliberate version change.

Runs `ansible-playbook playbooks/agent.yml` with the inventory the host was converged with
(Molecule's, else the repository's inventory/).
"""
import os
import re

import pytest
from lab_testinfra import ansible_playbook, inventory_values, task_output


def playbook(host, *args, extra_vars=None):
    """ansible-playbook playbooks/agent.yml on this host only; returns (rc, stdout + stderr)."""
    return ansible_playbook("playbooks/agent.yml", *args, limit=host.backend.host, extra_vars=extra_vars)


def recap_changed(out, hostname):
    match = re.search(rf"^{re.escape(hostname)}\s+:.*changed=(\d+)", out, re.MULTILINE)
    assert match, out[-2000:]
    return int(match.group(1))


def test_vvv_check_diff_run_never_prints_the_secrets(host):
    with host.sudo():
        current_key = host.check_output("sed -n 's/^api_key: *//p' /etc/datadog-agent/datadog.yaml")
        password = host.check_output(
            "sed -n 's/^ *password: *//p' /etc/datadog-agent/conf.d/postgres.d/conf.yaml")
    assert current_key and password
    # A rotated key makes datadog.yaml differ, so the task that writes it has a diff to hide.
    rotated = "rotated-test-key-" + os.urandom(6).hex()
    rc, out = playbook(host, "-vvv", "--check", "--diff", extra_vars={"datadog_api_key": rotated})
    assert rc == 0, out[-3000:]
    yaml_task = task_output(out, "datadog : The agent's datadog.yaml")
    assert "changed: [" in yaml_task, yaml_task
    assert "censored" in yaml_task or "hidden" in yaml_task, yaml_task
    leaks = [what for what, secret in [("the rotated API key", rotated), ("the current API key", current_key),
                                       ("the postgres password", password)] if secret in out]
    assert not leaks, f"-vvv --check --diff output contains {', '.join(leaks)}"


def test_check_diff_shows_a_diff_that_holds_no_secret(host):
    """Only the files holding a secret are no_log: a custom check changed by hand shows its diff in --check --diff,
    the postgres check's conf.yaml (its password) does not."""
    path = "/etc/datadog-agent/checks.d/custom_random.py"
    marker = "# changed by hand " + os.urandom(4).hex()
    with host.sudo():
        password = host.check_output(
            "sed -n 's/^ *password: *//p' /etc/datadog-agent/conf.d/postgres.d/conf.yaml")
        host.run_test("echo %s >> %s", marker, path)
        host.run_test("sed -i 's/^\\( *password: *\\).*/\\1changed-by-hand/' /etc/datadog-agent/conf.d/postgres.d/conf.yaml")
    try:
        rc, out = playbook(host, "--check", "--diff")
        assert rc == 0, out[-3000:]
        custom = task_output(out, "datadog : Custom checks are in checks.d")
        assert f"-{marker}" in custom, custom
        checks = task_output(out, "datadog : Each configured check's conf.yaml")
        assert "changed-by-hand" not in checks and password not in out, checks
    finally:
        rc, out = playbook(host)
    assert rc == 0, out[-3000:]
    with host.sudo():
        assert marker not in host.file(path).content_string
        assert "changed-by-hand" not in host.file("/etc/datadog-agent/conf.d/postgres.d/conf.yaml").content_string


SEED_TAGS = object()  # stands for the seed's tags as its YAML read them: the dash-less lines, one string


@pytest.mark.parametrize("extra_vars,message", [
    ({"datadog_api_key": ""}, r"datadog_api_key must be set .*DD_API_KEY"),
    ({"datadog_config": {"tags": SEED_TAGS}}, r"datadog_config\.tags must be a list of key:value strings"),
    ({"datadog_config": {"tags": ["team:demo", "no_value_here"]}},
     r"datadog_config\.tags must be a list of key:value strings.*no_value_here"),
    ({"datadog_site": "datadoghq.example"}, r"datadog_site.*must be one of"),
], ids=["no-api-key", "seed-tags-as-one-string", "tag-without-value", "unknown-site"])
def test_bad_input_fails_before_any_change(host, lab, extra_vars, message):
    if extra_vars.get("datadog_config", {}).get("tags") is SEED_TAGS:
        extra_vars = {"datadog_config": {"tags": " ".join(lab["lab_host_tags"])}}
    before = host.file("/etc/datadog-agent/datadog.yaml").mtime
    rc, out = playbook(host, extra_vars=extra_vars)
    assert rc != 0, out[-3000:]
    # Ansible wraps messages at the terminal's width.
    assert re.search(message, " ".join(out.split())), out[-3000:]
    assert recap_changed(out, host.backend.host) == 0
    assert host.file("/etc/datadog-agent/datadog.yaml").mtime == before


def test_changing_the_version_upgrades_and_downgrades_on_purpose(host, lab):
    pinned = lab["datadog_agent_version"]
    major_minor, patch = pinned.rsplit(".", 1)
    newer = f"{major_minor}.{int(patch) + 1}"
    try:
        rc, out = playbook(host, extra_vars={"datadog_agent_version": newer})
        assert rc == 0, out[-3000:]
        assert host.package("datadog-agent").version == f"1:{newer}-1"
        assert "datadog-agent" in host.check_output("apt-mark showhold").split()
        assert host.service("datadog-agent").is_running
    finally:
        rc, out = playbook(host)
    assert rc == 0, out[-3000:]
    assert host.package("datadog-agent").version == f"1:{pinned}-1"
    assert "datadog-agent" in host.check_output("apt-mark showhold").split()
    assert host.service("datadog-agent").is_running


def test_a_check_dropped_from_datadog_checks_stops_running(host):
    """A check (and its custom check) added, then dropped from the inventory: the next converge removes both
    files and restarts the agent once; the one after changes nothing. The agent's own conf.yaml.default and a
    conf.yaml written by hand are left alone."""
    config = "/etc/datadog-agent"
    extra_conf, extra_check = f"{config}/conf.d/lab_extra.d/conf.yaml", f"{config}/checks.d/lab_extra.py"
    own_default, by_hand = f"{config}/conf.d/lab_extra.d/conf.yaml.default", f"{config}/conf.d/by_hand.d/conf.yaml"
    values = inventory_values(host, ["datadog_checks", "datadog_custom_checks"])
    with host.sudo():
        host.run_test("mkdir -p %s/conf.d/lab_extra.d %s/conf.d/by_hand.d", config, config)
        host.run_test("echo 'instances: [{}]' > %s && echo 'instances: [{}]' > %s", own_default, by_hand)
    try:
        rc, out = playbook(host, extra_vars={
            "datadog_checks": {**values["datadog_checks"],
                               "lab_extra": {"init_config": {}, "instances": [{"min_collection_interval": 60}]}},
            "datadog_custom_checks": {**values["datadog_custom_checks"], "lab_extra": "checks.d/custom_random.py"}})
        assert rc == 0, out[-3000:]
        with host.sudo():
            assert host.file(extra_conf).exists and host.file(extra_check).exists
        before = host.check_output("systemctl show -P MainPID datadog-agent")

        rc, out = playbook(host)
        assert rc == 0, out[-3000:]
        with host.sudo():
            assert not host.file(extra_conf).exists and not host.file(extra_check).exists
            assert host.file(own_default).exists and host.file(by_hand).exists
            assert host.file(f"{config}/checks.d/custom_random.py").exists
        assert out.count("RUNNING HANDLER [datadog : Restart the Datadog Agent]") == 1, out[-3000:]
        assert host.check_output("systemctl show -P MainPID datadog-agent") not in ("0", before)

        rc, out = playbook(host)
        assert rc == 0, out[-3000:]
        assert recap_changed(out, host.backend.host) == 0, out[-3000:]
    finally:
        with host.sudo():
            host.run_test("rm -rf %s/conf.d/lab_extra.d %s/conf.d/by_hand.d %s", config, config, extra_check)
