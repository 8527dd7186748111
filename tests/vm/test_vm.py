"""The lab on a real VM, brought up by the repo's Vagrantfile (tests/vm/run.sh runs these after
`vagrant up` and again after `vagrant reload`): what a container can't show, and every service
answering after a boot. The checks and the lab's values are the shared ones (tests/testinfra)."""
import pytest
from lab_testinfra import (LAB_NAMES, assert_every_service_answers, assert_the_agent_answers_its_status_command,
                           assert_the_app_answers_on_the_controller, inventory_values)


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
    assert_the_app_answers_on_the_controller(lab["lab_app_port"], timeout=90)


def test_the_agent_answers_its_status_command(host):
    assert_the_agent_answers_its_status_command(host)
