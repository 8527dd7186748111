"""site.yml on a fresh container: each bad input stops the run with changed=0 on every host, names the
variable, and the container is left as it was (no package, no file of the lab's).

Also: the whole-lab Molecule scenario's idempotence step counts localhost (the resources play).
"""
import json
import os
import shutil
import subprocess
import uuid

import pytest
import yaml
from lab_ansible import ROOT, environment, run_playbook

IMAGE = os.environ.get("MOLECULE_IMAGE", "datadog-lab/debian:12")
KEYS = {"DD_API_KEY": "apikey-" + "31f5a7c9e1" * 3, "DD_APP_KEY": "appkey-" + "b8d6f4a2c0" * 4,
        "LAB_DATADOG_DB_PASSWORD": "dbpass-" + "6a4c2e8f0b" * 2}
CASES = [
    ("api_key_unset", {"DD_API_KEY": ""}, {}, "datadog_api_key must be set"),
    ("site_typo", {"DD_SITE": "datadoghq.con"}, {}, "value of datadog_site must be one of"),
    ("postgres_port", {}, {"postgresql_port": 70000}, "postgresql_port must be a TCP port"),
    ("resources_state", {}, {"datadog_resources_state": "bogus"}, "value of datadog_resources_state must be one of"),
]


def _docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "image", "inspect", IMAGE],
                                                     capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    # A missing engine or image fails the test, never skips it: `make setup` provides both.
    assert _docker_ok(), "no docker engine or no image %s: run `make setup`" % IMAGE
    name = "lab-input-check-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, IMAGE, "sleep", "infinity"], check=True,
                   capture_output=True)
    folder = tmp_path_factory.mktemp("inventory")
    (folder / "hosts.yml").write_text(yaml.safe_dump({"datadog_lab": {"hosts": {"lab": {
        "ansible_connection": "community.docker.docker", "ansible_host": name}}}}))
    shutil.copytree(ROOT / "inventory/group_vars", folder / "group_vars")
    try:
        yield name, folder / "hosts.yml"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def fingerprint(name):
    """What the lab would change first: installed packages, apt sources, /etc/postgresql, /etc/datadog-agent."""
    script = "dpkg-query -W -f '${Package}\\n' | sort | md5sum; ls /etc/apt/sources.list.d; ls -d /etc/postgresql /etc/datadog-agent 2>&1"
    return subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True).stdout


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_changes_nothing_on_a_fresh_container(container, case):
    name, inventory = container
    _, env_changes, extra, words = case
    before = fingerprint(name)
    rc, out, changed = run_playbook("site.yml", "-i", str(inventory), "-e", json.dumps(extra),
                                    env=environment(**dict(KEYS, **env_changes)))
    assert rc != 0, out[-3000:]
    assert words in " ".join(out.split()), out[-3000:]
    assert changed.get("lab") == 0 and set(changed.values()) == {0}, out[-3000:]
    assert not any(piece in out for piece in KEYS.values())
    assert fingerprint(name) == before


def test_the_whole_lab_idempotence_step_counts_localhost():
    """molecule/default converges site.yml (whose resources play runs on localhost) and then runs
    idempotence, which fails on changed=N of any host in the recap: a localhost change counts."""
    from molecule.command.idempotence import Idempotence

    scenario = yaml.safe_load((ROOT / "molecule/default/molecule.yml").read_text())
    assert scenario["provisioner"]["playbooks"]["converge"] == "../../site.yml"
    assert "scenario" not in scenario, "the sequence is the base config's, for every scenario"
    sequence = yaml.safe_load((ROOT / ".config/molecule/config.yml").read_text())["scenario"]["test_sequence"]
    assert sequence.index("idempotence") == sequence.index("converge") + 1
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    assert "playbooks/resources.yml" in [p["ansible.builtin.import_playbook"] for p in site]
    assert yaml.safe_load((ROOT / "playbooks/resources.yml").read_text())[0]["hosts"] == "localhost"
    recap = ("PLAY RECAP ***\nlab-default : ok=80 changed=0 unreachable=0 failed=0\n"
             "localhost : ok=5 changed=1 unreachable=0 failed=0\n")
    assert Idempotence._is_idempotent(None, recap) is False
    assert Idempotence._is_idempotent(None, recap.replace("changed=1", "changed=0")) is True


SKIPPED = "Skipped: the Datadog dashboards, the my_metric monitor and the downtimes, because DD_APP_KEY is not set"


def test_the_api_key_alone_passes_the_input_check_and_says_what_is_skipped(container):
    """The quick start's minimum: DD_API_KEY without DD_APP_KEY. The input check passes (only it runs here:
    every part is skipped by tag) and says in one line what is skipped and which key brings it."""
    name, inventory = container
    rc, out, changed = run_playbook("site.yml", "-i", str(inventory), "--skip-tags", "database,agent,app,resources",
                                    env=environment(**dict(KEYS, DD_APP_KEY="")))
    assert rc == 0, out[-3000:]
    assert " ".join(out.split()).count(SKIPPED) == 1, out[-3000:]
    assert set(changed.values()) == {0}, out[-3000:]
    assert not any(piece in out for piece in KEYS.values())


def test_the_resources_asked_for_by_tag_need_the_application_key_before_any_change(container):
    name, inventory = container
    before = fingerprint(name)
    rc, out, changed = run_playbook("site.yml", "-i", str(inventory), "--tags", "resources,database",
                                    env=environment(**dict(KEYS, DD_APP_KEY="")))
    assert rc != 0, out[-3000:]
    assert "datadog_resources_app_key must be set (it is empty): DD_APP_KEY" in " ".join(out.split()), out[-3000:]
    assert SKIPPED not in " ".join(out.split())
    assert set(changed.values()) == {0} and fingerprint(name) == before, out[-3000:]
