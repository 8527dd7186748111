"""Bad input to the postgresql role fails before any change, naming the variable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles: [postgresql]
"""
GOOD = {"postgresql_monitoring_password": "s3cret-Value"}


def run_role(tmp_path, extra, base=GOOD):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps({**base, **extra}))
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_INVENTORY": "localhost,",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    return subprocess.run(
        ["ansible-playbook", "play.yml", "-e", "@vars.json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


# (extra vars, words the message must hold); test_input_errors.py counts these among the cases that
# prove each assert of roles/*/tasks/assert.yml fires.
CASES = [
    ({"postgresql_port": "not-a-port"}, "postgresql_port"),
    ({"postgresql_port": 70000}, "postgresql_port must be a TCP port, 1-65535"),
    ({"postgresql_monitoring_auth_method": "trust"}, "postgresql_monitoring_auth_method must be one of"),
    ({"postgresql_monitoring_user": ""}, "postgresql_monitoring_user must be a non-empty user name"),
    ({"postgresql_monitoring_password": ""}, "postgresql_monitoring_password must be set"),
    ({"postgresql_database": " "}, "postgresql_database must be a non-empty database name"),
    ({"postgresql_table": "Large Test"}, "postgresql_table must be a plain lower-case SQL identifier"),
    ({"postgresql_initial_rows": 5000000}, "postgresql_initial_rows must be 0-1000000"),
    ({"postgresql_version": "latest"}, "postgresql_version must be empty"),
    ({"postgresql_version": "9"}, "postgresql_version must be empty (the distribution's) or a major version 10 or later"),
]


@pytest.mark.parametrize(("extra", "expected"), CASES)
def test_bad_input_fails_before_any_change(tmp_path, extra, expected):
    res = run_role(tmp_path, extra)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert expected in " ".join(out.split()), out  # a long message may be wrapped
    assert "changed=0" in out, out
    # Nothing past the input checks ran: facts were never gathered.
    assert "Distribution facts are known" not in out, out


def test_missing_password_is_named(tmp_path):
    res = run_role(tmp_path, {}, base={})
    assert res.returncode != 0
    assert "missing required arguments: postgresql_monitoring_password" in res.stdout + res.stderr


def test_password_never_printed_on_failure(tmp_path):
    res = run_role(tmp_path, {"postgresql_port": 0})
    assert res.returncode != 0
    assert GOOD["postgresql_monitoring_password"] not in res.stdout + res.stderr
