"""Fixtures of the whole-lab checks: the lab's own values, read through Ansible (never retyped)."""
import json
import os
import urllib.request
from pathlib import Path

import pytest
import yaml
from lab_testinfra import LAB_NAMES, inventory_values

SCENARIO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab(host):
    return inventory_values(host, LAB_NAMES)


def controller_host_vars():
    """The controller's host_vars in the inventory the suite runs with (Molecule's, or the one the VM
    and Docker-provider tests make): the fake API's port is there, and those tests choose their own."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    linked = Path(ephemeral, "inventory", "host_vars", "localhost.yml") if ephemeral else None
    return linked if linked and linked.is_file() else SCENARIO / "host_vars" / "localhost.yml"


def fake_api_get(path):
    """GET on the fake Datadog API, on the controller's loopback (prepare.yml started it)."""
    return fake_api_call("GET", path)


def fake_api_call(method, path, body=None):
    """One call to the fake Datadog API's test control (/fake/...): its decoded answer."""
    port = yaml.safe_load(controller_host_vars().read_text())["lab_fake_api_port"]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)
