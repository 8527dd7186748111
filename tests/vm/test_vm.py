"""The lab on a real VM, brought up by the repo's Vagrantfile (tests/vm/run.sh runs these after
`vagrant up` and again after `vagrant reload`): what a container can't show, and every service
answering after a reboot. The lab's values are read through Ansible, never retyped."""
import json
import time
import urllib.request

import pytest

UNITS_VAR = "flask_app_service_name"
LAB_VARS = ["lab_app_port", "lab_postgresql_port", "lab_monitoring_user", "lab_monitoring_password", UNITS_VAR]


def wait_for(check, timeout=90, step=2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


@pytest.fixture(scope="module")
def lab(host):
    expr = "{{ {" + ", ".join(f"'{n}': {n}" for n in LAB_VARS) + "} | to_json }}"
    out = host.ansible("ansible.builtin.debug", f"msg={expr}", check=False)["msg"]
    return out if isinstance(out, dict) else json.loads(out)


def test_the_lab_runs_on_a_virtual_machine_not_in_a_container(host):
    assert host.run("systemd-detect-virt --container").rc != 0
    assert host.check_output("systemd-detect-virt --vm") in ("qemu", "kvm")


@pytest.mark.parametrize("unit", ["postgresql", "datadog-agent", UNITS_VAR])
def test_the_service_is_enabled_and_running(host, lab, unit):
    name = lab[unit] if unit == UNITS_VAR else unit
    service = host.service(name)
    assert service.is_enabled, name
    assert wait_for(lambda: service.is_running), name


def test_the_app_answers_on_the_controller_through_the_forwarded_port(lab):
    """The Vagrantfile forwards the app's port to the controller's 127.0.0.1."""
    url = f"http://127.0.0.1:{lab['lab_app_port']}/api/apm"

    def get():
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.read().decode()
        except OSError:
            return None

    assert wait_for(get) == "Getting APM Started"


def test_the_monitoring_user_logs_in_to_postgresql(host, lab):
    def login():
        return host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d postgres -XAtc 'select 1'",
                        lab["lab_monitoring_password"], str(lab["lab_postgresql_port"]),
                        lab["lab_monitoring_user"])

    res = wait_for(lambda: (r := login()).rc == 0 and r, timeout=60) or login()
    assert res.rc == 0, res.stderr


def test_the_agent_answers_its_status_command(host):
    res = wait_for(lambda: (r := host.run("datadog-agent status")).rc == 0 and r, timeout=60)
    assert res, host.run("datadog-agent status").stderr
