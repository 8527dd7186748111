"""controller/venv.sh, which `vagrant up` calls: the lane's venv is reused while its pins hold, and
rebuilt (here: refused with a clear message) when they change or no fitting Python exists. The
build itself is proven by the VM test's `vagrant up`, which has no other Ansible."""
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "controller" / "venv.sh"
PYTHON_313 = Path("/root/.pyenv/versions/3.13.0/bin/python3.13")


def venv_sh(*args, **env):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def fake_venv(tmp_path, lane, stamp):
    venv = tmp_path / f"controller-{lane}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "ansible-playbook").write_text("#!/bin/sh\n")
    (venv / "bin" / "ansible-playbook").chmod(0o755)
    (venv / ".pins-sha256").write_text(stamp + "\n")
    return venv


@pytest.mark.parametrize("lane", ["2.16", "2.19"])
def test_each_lane_pins_its_ansible_core_its_bundle_and_the_api_client(lane):
    pins = (ROOT / "controller" / f"requirements-{lane}.txt").read_text().splitlines()
    names = {line.split("==")[0].lower() for line in pins if "==" in line}
    assert {"ansible-core", "ansible", "datadog-api-client"} <= names
    assert f"ansible-core=={lane}." in "\n".join(pins)
    assert all("==" in line for line in pins if line and not line.startswith("#")), "every line pinned"


def test_an_unknown_lane_is_refused_with_the_accepted_ones():
    res = venv_sh("2.18")
    assert res.returncode == 2 and "lane must be 2.16 or 2.19" in res.stderr


def test_a_venv_whose_pins_are_unchanged_is_reused(tmp_path):
    pins = (ROOT / "controller" / "requirements-2.19.txt").read_bytes()
    venv = fake_venv(tmp_path, "2.19", hashlib.sha256(pins).hexdigest())
    res = venv_sh("2.19", str(venv), LAB_CONTROLLER_PYTHON="/nonexistent/python3")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(venv) and "ready" in res.stderr
    assert (venv / "bin" / "ansible-playbook").read_text() == "#!/bin/sh\n"


def test_changed_pins_rebuild_and_an_unfit_python_is_named(tmp_path):
    assert PYTHON_313.exists(), f"{PYTHON_313} (this machine image's pyenv build) is missing"
    venv = fake_venv(tmp_path, "2.16", "0" * 64)  # pins changed since this venv was built
    res = venv_sh("2.16", str(venv), LAB_CONTROLLER_PYTHON=str(PYTHON_313))
    assert res.returncode == 1
    assert "needs Python 3.12/3.11/3.10" in res.stderr and "LAB_CONTROLLER_PYTHON" in res.stderr
    assert "LAB_ANSIBLE_PLAYBOOK" in res.stderr
