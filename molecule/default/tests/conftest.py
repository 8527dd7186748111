"""Fixtures of the whole-lab checks: the lab's own values, read through Ansible (never retyped)."""
import json
import urllib.request
from pathlib import Path

import pytest
import yaml
from lab_testinfra import LAB_NAMES, inventory_values

SCENARIO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab(host):
    return inventory_values(host, LAB_NAMES)


def fake_api_get(path):
    """GET on the fake Datadog API, on the controller's loopback (prepare.yml started it)."""
    port = yaml.safe_load((SCENARIO / "host_vars/localhost.yml").read_text())["lab_fake_api_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.load(resp)
