"""The lab in a container of Vagrant's Docker provider, brought up by the repo's Vagrantfile
(tests/docker-provider/run.sh runs these with the default scenario's suite): what is the provider's
own, and every service answering. The container's id and the lab host's architecture (amd64, or
arm64 under emulation) come from run.sh (LAB_DOCKER_CONTAINER, LAB_TEST_ARCH)."""
import json
import os
import subprocess

import pytest
from lab_testinfra import (LAB_NAMES, assert_every_service_answers, assert_the_agent_answers_its_status_command,
                           assert_the_app_answers_on_the_controller, inventory_values)


@pytest.fixture(scope="module")
def lab(host):
    return inventory_values(host, LAB_NAMES)


@pytest.fixture(scope="module")
def container():
    """`docker inspect` of the container Vagrant made."""
    out = subprocess.run(["docker", "container", "inspect", os.environ["LAB_DOCKER_CONTAINER"]],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return json.loads(out)[0]


def test_the_lab_runs_in_a_docker_container_under_systemd(host):
    assert host.check_output("systemd-detect-virt --container") == "docker"
    assert host.check_output("cat /proc/1/comm") == "systemd"


def test_the_lab_runs_on_the_architecture_asked_for_down_to_the_agent_and_the_app(host):
    """The kernel's machine, dpkg's architecture (which picked the agent stand-in's packages, as it picks
    Datadog's) and the app's compiled ddtrace extension, loaded by the app's own Python."""
    arch = os.environ.get("LAB_TEST_ARCH", "amd64")
    machine = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
    assert host.check_output("uname -m") == machine
    for package in ("datadog-agent", "datadog-agent-standin-python"):
        assert host.check_output("dpkg-query -W -f '${Architecture}' %s", package) == arch, package
    app = host.check_output(
        "/opt/flask-app/venv/bin/python -c 'import platform, ddtrace.internal._encoding as e; "
        "print(platform.machine(), e.__file__)'")
    assert app.split()[0] == machine and app.endswith(".so"), app


def test_systemd_runs_without_privileged_mode_with_only_sys_admin_added(container):
    """--privileged fails on hosts whose bounding set lacks a capability: the Vagrantfile never asks for it."""
    config = container["HostConfig"]
    assert config["Privileged"] is False
    # Docker names it with or without the CAP_ prefix, depending on its version.
    assert [cap.removeprefix("CAP_") for cap in config["CapAdd"]] == ["SYS_ADMIN"]


def test_every_published_port_listens_on_loopback_only(container, lab):
    """SSH and the app are published on 127.0.0.1 alone: nothing reaches the lab from the network."""
    ports = container["NetworkSettings"]["Ports"]
    assert {"22/tcp", f"{lab['lab_app_port']}/tcp"} <= set(ports)
    bindings = [b for published in ports.values() for b in (published or [])]
    assert bindings and {b["HostIp"] for b in bindings} == {"127.0.0.1"}, bindings


def test_every_service_answers(host, lab):
    assert_every_service_answers(host, lab, timeout=60)


def test_the_app_answers_on_the_controller_through_the_published_port(container, lab):
    """The Vagrantfile forwards the app's port to 127.0.0.1 (LAB_APP_HOST_PORT, or the next free one)."""
    port = container["NetworkSettings"]["Ports"][f"{lab['lab_app_port']}/tcp"][0]["HostPort"]
    assert_the_app_answers_on_the_controller(port, timeout=30)


def test_the_agent_answers_its_status_command(host):
    assert_the_agent_answers_its_status_command(host)
