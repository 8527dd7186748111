"""The lab on a real VM, brought up by the repo's Vagrantfile (tests/vm/run.sh runs these after
`vagrant up` and again after `vagrant reload`): what a container can't show, and every service
answering after a boot. The checks and the lab's values are the shared ones (tests/testinfra)."""
import urllib.request

import pytest
from lab_testinfra import LAB_NAMES, assert_every_service_answers, inventory_values, wait_for


@pytest.fixture(scope="module")
def lab(host):
    return inventory_values(host, LAB_NAMES)


def test_the_lab_runs_on_a_virtual_machine_not_in_a_container(host):
    assert host.run("systemd-detect-virt --container").rc != 0
    assert host.check_output("systemd-detect-virt --vm") in ("qemu", "kvm")


def test_every_service_answers_after_boot(host, lab):
    assert_every_service_answers(host, lab, timeout=120)


def test_the_app_answers_on_the_controller_through_the_forwarded_port(lab):
    """The Vagrantfile forwards the app's port to the controller's 127.0.0.1."""
    url = f"http://127.0.0.1:{lab['lab_app_port']}/api/apm"

    def get():
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.read().decode()
        except OSError:
            return None

    assert wait_for(get, timeout=90, step=2) == "Getting APM Started"


def test_the_agent_answers_its_status_command(host):
    res = wait_for(lambda: (r := host.run("datadog-agent status")).rc == 0 and r, timeout=60)
    assert res, host.run("datadog-agent status").stderr
