"""The lab_probe module (roles/lab_probe), run as Ansible runs a module: what it reads of packages (the
machine's real dpkg), files, accounts and a venv (this Python's), and that it never reports a change.
The units' answer is parsed from a stand-in `systemctl` on PATH (this machine runs no systemd); the
Molecule scenarios read real units with it."""
import hashlib
import os
import subprocess
import sys

import pytest
from lab_ansible import run_module


def probe(tmp_path, check_mode=False, env=None, **params):
    return run_module("roles/lab_probe/library/lab_probe.py", tmp_path, check_mode, env, **params)


def test_installed_packages_have_version_and_status_and_unknown_ones_are_left_out(tmp_path):
    version = subprocess.run(["dpkg-query", "--show", "--showformat=${Version}", "dpkg"], capture_output=True,
                             text=True, check=True).stdout
    result = probe(tmp_path, packages=["dpkg=0.1", "lab-probe-no-such-package"])
    assert result["packages"] == {"dpkg": {"version": version, "status": "ii"}}
    assert result["changed"] is False


def test_files_that_are_missing_or_differ_in_a_given_key_are_outdated(tmp_path):
    conf = tmp_path / "lab.conf"
    conf.write_text("port = 5432\n")
    conf.chmod(0o640)
    sha1 = hashlib.sha1(b"port = 5432\n").hexdigest()
    result = probe(tmp_path, files=[
        {"path": str(conf), "checksum": sha1, "owner": "root", "group": "root", "mode": "0640"},
        {"path": str(tmp_path), "checksum": "-", "mode": "%04o" % (tmp_path.stat().st_mode & 0o7777)},
        {"path": str(tmp_path / "missing.conf")},
        {"path": str(conf) + ".again"},
        {"path": str(tmp_path / "gone.d"), "state": "absent"},
    ])
    assert result["files"][str(conf)] == {"checksum": sha1, "owner": "root", "group": "root", "mode": "0640"}
    assert result["files_outdated"] == [str(tmp_path / "missing.conf"), str(conf) + ".again"]

    assert probe(tmp_path, files=[{"path": str(conf), "state": "absent"}])["files_outdated"] == [str(conf)]
    for changed in ({"checksum": hashlib.sha1(b"port = 5433\n").hexdigest()}, {"mode": "0644"}, {"owner": "nobody"}):
        want = dict({"path": str(conf), "checksum": sha1, "owner": "root", "mode": "0640"}, **changed)
        assert probe(tmp_path, files=[want])["files_outdated"] == [str(conf)], changed


def test_lab_files_entries_are_read_by_their_content_and_the_content_stays_out_of_the_output(tmp_path):
    conf = tmp_path / "datadog.yaml"
    conf.write_text("api_key: lab-probe-secret-1\n")
    conf.chmod(0o640)
    entries = [{"path": str(conf), "content": "api_key: lab-probe-secret-1\n", "mode": "0640"},
               {"path": str(tmp_path), "state": "directory"},
               {"path": str(tmp_path / "conf.d"), "state": "directory"}]
    result = probe(tmp_path, files=entries)
    assert result["files_outdated"] == [str(tmp_path / "conf.d")]
    assert "lab-probe-secret-1" not in str(result), "the content is in the module's answer"
    changed = [dict(entries[0], content="api_key: lab-probe-secret-2\n"), {"path": str(conf), "state": "directory"}]
    result = probe(tmp_path, files=changed)
    assert result["files_outdated"] == [str(conf), str(conf)]
    assert "lab-probe-secret-2" not in str(result)


def test_a_relative_file_path_fails_with_its_option_named(tmp_path):
    result = probe(tmp_path, files=[{"path": "etc/lab.conf"}])
    assert result["failed"] and result["msg"].startswith("files: each item needs an absolute path")
    assert probe(tmp_path, files=[{"path": "/etc/lab.conf", "state": "gone"}])["failed"]


def test_accounts_are_read_from_the_passwd_and_group_databases(tmp_path):
    result = probe(tmp_path, users=["root", "lab-probe-nobody"], groups=["root", "lab-probe-nogroup"])
    assert result["users"] == {"root": {"group": "root", "groups": result["users"]["root"]["groups"],
                                        "home": "/root", "shell": result["users"]["root"]["shell"],
                                        "comment": "root"}}
    assert set(result["groups"]) == {"root"}


def test_the_venvs_distributions_are_listed_with_normalised_names(tmp_path):
    listed = probe(tmp_path, venv_python=sys.executable)["venv_packages"]
    assert "pytest==%s" % pytest.__version__ in listed
    assert any(name.startswith("datadog-api-client==") for name in listed)  # pip lists it as datadog_api_client
    assert probe(tmp_path, venv_python=str(tmp_path / "no/bin/python"))["venv_packages"] is None


def test_units_are_read_in_one_systemctl_show_in_the_order_asked(tmp_path):
    (tmp_path / "bin").mkdir()
    systemctl = tmp_path / "bin/systemctl"
    systemctl.write_text("#!/bin/sh\necho \"$@\" >" + str(tmp_path / "argv") + "\n"
                         "printf 'Id=postgresql.service\\nLoadState=loaded\\nActiveState=active\\nUnitFileState=enabled\\n\\n"
                         "Id=app.service\\nLoadState=not-found\\nActiveState=inactive\\nUnitFileState=\\n'\n")
    systemctl.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
    result = probe(tmp_path, env=env, check_mode=True, units=["postgresql", "app.service"])
    assert (tmp_path / "argv").read_text().split() == ["show", "--property=Id,LoadState,ActiveState,UnitFileState",
                                                       "postgresql", "app.service"]
    assert result["units"] == {"postgresql": {"load": "loaded", "active": "active", "enabled": "enabled"},
                               "app.service": {"load": "not-found", "active": "inactive", "enabled": ""}}
    assert result["changed"] is False
