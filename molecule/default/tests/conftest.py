"""Shared by the whole-lab checks: the lab's own values, read through Ansible (never retyped)."""
import json
import urllib.request
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
LAB_VARS = ["lab_hostname", "lab_service", "lab_env", "lab_version", "lab_app_port", "lab_database",
            "lab_table", "lab_postgresql_port", "lab_monitoring_user", "lab_monitoring_password",
            "flask_app_service_name"]


@pytest.fixture(scope="module")
def lab(host):
    expr = "{{ {" + ", ".join(f"'{n}': {n}" for n in LAB_VARS) + "} | to_json }}"
    out = host.ansible("ansible.builtin.debug", f"msg={expr}", check=False)["msg"]
    return out if isinstance(out, dict) else json.loads(out)


def fake_api_get(path):
    """GET on the fake Datadog API, on the controller's loopback (prepare.yml started it)."""
    port = yaml.safe_load((SCENARIO / "host_vars/localhost.yml").read_text())["lab_fake_api_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.load(resp)
