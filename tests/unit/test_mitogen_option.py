"""Mitogen is an option that one setting turns on: ANSIBLE_STRATEGY=mitogen_linear, through the shim in
controller/strategy that ansible.cfg names. Unset, the default strategy runs without it, and needs no Mitogen.

Mitogen runs each module inside one persistent Python per host, which names itself in its command line
(`python(mitogen:user@host:pid)`): a task that prints its parent's command line shows who ran it.
"""
import re

import pytest
from lab_ansible import ROOT, environment, run_playbook

PLAYBOOK = """\
- name: Who runs the modules
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The module's parent process
      ansible.builtin.shell: tr '\\0' ' ' </proc/$PPID/cmdline
      changed_when: false
      register: parent
    - name: Show it
      ansible.builtin.debug:
        msg: "parent: {{ parent.stdout }}"
"""
# Mitogen takes over connections named by short names only (local, ssh, docker...), as here.
INVENTORY = "localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n"


@pytest.fixture(scope="module")
def play(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mitogen")
    (folder / "play.yml").write_text(PLAYBOOK)
    (folder / "hosts").write_text(INVENTORY)
    # A Python that cannot import Mitogen, as where it is not installed: sitecustomize blocks the import.
    (folder / "no_mitogen").mkdir()
    (folder / "no_mitogen" / "sitecustomize.py").write_text("import sys\nsys.modules['ansible_mitogen'] = None\n")
    return folder


def run(play, strategy, **extra):
    env = environment(**extra)
    env.pop("ANSIBLE_STRATEGY", None)
    if strategy:
        env["ANSIBLE_STRATEGY"] = strategy
    return run_playbook("-i", str(play / "hosts"), str(play / "play.yml"), cwd=play, env=env, timeout=60)


def parent_of_modules(out):
    found = re.findall(r"parent: (.*?)'?$", out, re.M)
    assert len(found) == 1, out
    return found[0]


def test_the_one_setting_runs_the_modules_under_mitogen(play):
    code, out, changed = run(play, "mitogen_linear")
    assert code == 0 and changed == {"localhost": 0}, out
    assert "(mitogen:" in parent_of_modules(out), out


def test_the_default_strategy_neither_uses_nor_needs_mitogen(play):
    code, out, changed = run(play, None, PYTHONPATH=str(play / "no_mitogen"))
    assert code == 0 and changed == {"localhost": 0}, out
    assert "mitogen" not in parent_of_modules(out), out


def test_selected_without_mitogen_installed_the_error_says_what_to_install(play):
    code, out, _ = run(play, "mitogen_linear", PYTHONPATH=str(play / "no_mitogen"))
    assert code != 0
    assert "strategy mitogen_linear needs Mitogen" in out and "pip install mitogen" in out, out


@pytest.mark.parametrize("pins", ["requirements-dev.txt", "requirements-dev-2.16.txt",
                                  "controller/requirements-2.19.txt", "controller/requirements-2.16.txt"])
def test_each_lane_pins_mitogen(pins):
    assert re.search(r"^mitogen==\d+\.\d+\.\d+$", (ROOT / pins).read_text(), re.M)
