"""Which ansible-playbook the tests run, and how: one place, so that both lanes (2.19, 2.16) run the same tests.

LAB_ANSIBLE_PLAYBOOK picks the ansible-playbook (e.g. .venv-2.16/bin/ansible-playbook); by default the one
beside the Python running pytest. Not a test file: the test modules import it from this directory.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = os.environ.get("LAB_ANSIBLE_PLAYBOOK") or str(Path(sys.executable).parent / "ansible-playbook")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def environment(**extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PYTHONDONTWRITEBYTECODE="1", ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    env["PATH"] = "%s:%s" % (Path(ANSIBLE_PLAYBOOK).parent, env.get("PATH", ""))
    for name in ("DD_API_KEY", "DD_APP_KEY", "DD_SITE", "LAB_DATADOG_DB_PASSWORD", "LAB_APP_DB_PASSWORD"):
        env.pop(name, None)
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def run_playbook(*args, cwd=ROOT, env=None, timeout=300):
    """ansible-playbook ARGS; returns (returncode, stdout + stderr, {host: changed})."""
    process = subprocess.run([ANSIBLE_PLAYBOOK, *args], cwd=cwd, env=env or environment(), capture_output=True,
                             text=True, timeout=timeout)
    out = process.stdout + process.stderr
    return process.returncode, out, {m.group(1): int(m.group(3)) for m in RECAP.finditer(out)}


def run_module(module, tmp_path, check_mode=False, env=None, **params):
    """One of the lab's modules (a path under roles/) run as Ansible runs it, with PARAMS; its JSON answer."""
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(params, _ansible_check_mode=check_mode)}))
    out = subprocess.run([sys.executable, str(ROOT / module), str(args)], capture_output=True, text=True, timeout=60,
                         env=env or os.environ, check=False).stdout
    return json.loads(out)
