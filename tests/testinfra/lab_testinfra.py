"""What every testinfra suite of the lab shares: the Molecule scenarios (the base config,
.config/molecule/config.yml, puts this folder on their PYTHONPATH) and the VM test (tests/vm/run.sh
does the same). The values come from the inventory the host was converged with, never retyped.
"""
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The lab-wide values (inventory/group_vars/all/lab.yml) the whole-lab suites read.
LAB_NAMES = ["lab_hostname", "lab_service", "lab_env", "lab_version", "lab_app_port", "lab_database",
             "lab_table", "lab_postgresql_port", "lab_monitoring_user", "lab_monitoring_password",
             "flask_app_service_name"]


def inventory_values(host, names, role=None):
    """NAMES as the inventory resolves them for this host, in one Ansible call. A name the inventory
    leaves unset is None, or with ROLE that role's default (read, untemplated, from its defaults)."""
    expr = "{{ {" + ", ".join(f"'{n}': {n} | default(none)" for n in names) + "} | to_json }}"
    out = host.ansible("ansible.builtin.debug", f"msg={expr}", check=False)["msg"]
    values = out if isinstance(out, dict) else json.loads(out)
    if role:
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        values = {n: defaults.get(n) if v is None else v for n, v in values.items()}
    return values


def inventory_value(host, name, role=None):
    return inventory_values(host, [name], role)[name]


def ansible_playbook(playbook, *args, limit=None, extra_vars=None, timeout=900, unset=()):
    """ansible-playbook PLAYBOOK (a path in the repo) with the inventory the host was converged with
    (Molecule's; the VM test sets MOLECULE_EPHEMERAL_DIRECTORY the same way), uncoloured, without the
    environment variables named in UNSET. Returns (returncode, stdout + stderr)."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    inventory = os.path.join(ephemeral, "inventory") if ephemeral else str(ROOT / "inventory")
    # EXTRA_VARS through a file, so that a key among them is never on a command line.
    with tempfile.NamedTemporaryFile("w", suffix=".json") as extra:
        json.dump(extra_vars or {}, extra)
        extra.flush()
        cmd = ["ansible-playbook", "-i", inventory, *(["--limit", limit] if limit else []), "-e", f"@{extra.name}",
               *args, str(ROOT / playbook)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
                             env={**{k: v for k, v in os.environ.items() if k not in unset},
                                  "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    return res.returncode, re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)


def task_output(out, name):
    """What a playbook printed for the first task or handler whose name ('role : task') starts with NAME."""
    chunks = [c for c in re.split(r"(?:TASK|RUNNING HANDLER) \[", out)[1:] if c.startswith(name)]
    assert chunks, f"task {name!r} not in the output:\n{out[-3000:]}"
    return chunks[0]


def wait_for(check, timeout=30, step=1):
    """check()'s first truthy result within timeout seconds, else its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


def http_get(host, port, path, timeout=3):
    """GET http://127.0.0.1:PORT/PATH from inside the host: (status, body); status 0 if no answer."""
    script = ("import sys, urllib.request, urllib.error\n"
              "try:\n"
              f"    r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout={timeout})\n"
              "    print(r.status); sys.stdout.write(r.read().decode())\n"
              "except urllib.error.HTTPError as e:\n"
              "    print(e.code)\n"
              "except OSError:\n"
              "    print(0)\n")
    status, _, body = host.check_output("python3 -c %s", script).partition("\n")
    return int(status), body


def assert_every_service_answers(host, lab, timeout=60):
    """After a boot: systemd is up, each unit runs, the app answers and the monitoring user logs in."""
    assert wait_for(lambda: host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded"),
                    timeout=timeout), host.run("systemctl --failed").stdout
    for unit in ("postgresql", "datadog-agent", lab["flask_app_service_name"]):
        assert host.service(unit).is_enabled, unit
        assert wait_for(lambda: host.service(unit).is_running, timeout=timeout), unit
    assert wait_for(lambda: http_get(host, lab["lab_app_port"], "/api/apm", timeout=10)
                    == (200, "Getting APM Started"), timeout=timeout)

    def login():
        return host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d postgres -XAtc 'select 1'",
                        lab["lab_monitoring_password"], str(lab["lab_postgresql_port"]), lab["lab_monitoring_user"])

    res = wait_for(lambda: (r := login()).rc == 0 and r, timeout=timeout) or login()
    assert res.rc == 0, res.stderr


def assert_the_app_answers_on_the_controller(port, timeout=90):
    """The app's /api/apm through PORT on the controller's 127.0.0.1 (the port the Vagrantfile
    forwards or publishes) answers as the app does, within TIMEOUT seconds."""
    def get():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/apm", timeout=10) as resp:
                return resp.read().decode()
        except OSError:
            return None

    assert wait_for(get, timeout=timeout, step=2) == "Getting APM Started"


def assert_the_agent_answers_its_status_command(host, timeout=60):
    res = wait_for(lambda: (r := host.run("datadog-agent status")).rc == 0 and r, timeout=timeout)
    assert res, host.run("datadog-agent status").stderr
