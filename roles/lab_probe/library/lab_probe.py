#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: read, in one call, what a role is about to manage on a host, and change nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_probe
short_description: Reads a host's packages, files, systemd units, accounts and venv at once, read-only
description:
  - One remote execution in place of a no-change module call per package, file, unit and account:
    a role runs it first, then only the tasks whose part differs from what it wants.
  - Never changes anything; runs the same in check mode. Works with Python 3.6 and later.
options:
  packages:
    description: Debian package names; C(name=version) is accepted and read as C(name).
    type: list
    elements: str
    default: []
  files:
    description:
      - The files and directories the role wants, each C(path) and optionally C(checksum) (SHA-1 of
        the content, or C(-) for a directory), C(owner), C(group) and C(mode) (four octal digits).
      - A key left out is not compared, so C({path}) alone asks only whether the path exists.
      - C(state=absent) asks for the path not to exist: it is outdated when it does.
      - lab_file's I(files) are read as well, so one list can serve both modules: C(content) stands
        for its SHA-1 (and is kept out of the output, as a secret would be), C(state=directory)
        for C(checksum=-), C(state=file) for C(present).
    type: list
    elements: dict
    default: []
  units:
    description: systemd unit names, read with C(systemctl show).
    type: list
    elements: str
    default: []
  users:
    description: User account names.
    type: list
    elements: str
    default: []
  groups:
    description: Group names.
    type: list
    elements: str
    default: []
  venv_python:
    description: A venv's python; its installed distributions are listed with C(pip list).
    type: path
"""

EXAMPLES = r"""
- name: The app's packages, files, unit and account are known
  lab_probe:
    packages: [python3-venv]
    files:
      - {path: /opt/app, checksum: "-", owner: root, group: root, mode: "0755"}
    units: [app.service]
    users: [app]
    venv_python: /opt/app/venv/bin/python
  register: probe
"""

RETURN = r"""
packages: {description: Installed packages by name, each C(version) and dpkg's C(status) (e.g. ii, hi)., type: dict, returned: always}
files: {description: Existing paths, each C(checksum) (- for a directory), C(owner), C(group), C(mode)., type: dict, returned: always}
files_outdated: {description: "The paths of I(files) that are missing, differ in a compared key, or exist though C(state=absent).", type: list,
                 returned: always}
units: {description: Per unit, C(load), C(active) and C(enabled) (LoadState, ActiveState, UnitFileState)., type: dict, returned: always}
users: {description: Existing users, each C(group) (primary), C(groups) (supplementary), C(home), C(shell), C(comment)., type: dict, returned: always}
groups: {description: Existing groups, each C(members)., type: dict, returned: always}
venv_packages: {description: The venv's distributions as normalised C(name==version) (PEP 503 names); null when its python can't list them., type: list, returned: always}
"""

import grp
import hashlib
import json
import os
import pwd
import re
import stat

from ansible.module_utils.basic import AnsibleModule


def read_packages(module, names):
    if not names:
        return {}
    names = [n.split("=", 1)[0] for n in names]
    rc, out, err = module.run_command(
        ["dpkg-query", "--show", "--showformat=${Package}\t${Version}\t${db:Status-Abbrev}\n"] + names)
    # 1: some package is unknown to dpkg (named on stderr, left out of the answer).
    if rc not in (0, 1):
        module.fail_json(msg="dpkg-query failed: %s" % err.strip())
    packages = {}
    for line in out.splitlines():
        name, version, status = (line.split("\t") + ["", ""])[:3]
        if status[1:2] == "i":
            packages[name] = {"version": version, "status": status.strip()}
    return packages


def sha1(path):
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def name_of(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def wanted_checksum(want):
    if want.get("content") is not None:
        return hashlib.sha1(want["content"].encode("utf-8")).hexdigest()
    return "-" if want.get("state") == "directory" else want.get("checksum")


def read_files(wanted):
    found, outdated = {}, []
    for want in wanted:
        path = want["path"]
        absent = want.get("state") == "absent"
        want = dict(want, checksum=wanted_checksum(want))
        try:
            st = os.stat(path)
        except OSError:
            if not absent:
                outdated.append(path)
            continue
        have = {
            "checksum": "-" if stat.S_ISDIR(st.st_mode) else sha1(path) if stat.S_ISREG(st.st_mode) else "?",
            "owner": name_of(pwd.getpwuid, st.st_uid),
            "group": name_of(grp.getgrgid, st.st_gid),
            "mode": "%04o" % stat.S_IMODE(st.st_mode),
        }
        found[path] = have
        if absent or any(str(want[key]) != have[key] for key in have if want.get(key) is not None):
            outdated.append(path)
    return found, outdated


def read_units(module, names):
    if not names:
        return {}
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=Id,LoadState,ActiveState,UnitFileState"] + names)
    if rc != 0:
        module.fail_json(msg="systemctl show failed: %s" % err.strip())
    # One block of KEY=value lines per unit, in the order asked, separated by blank lines.
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    return {name: {"load": b.get("LoadState", ""), "active": b.get("ActiveState", ""),
                   "enabled": b.get("UnitFileState", "")}
            for name, b in zip(names, blocks)}


def read_users(names):
    users = {}
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        users[name] = {
            "group": name_of(grp.getgrgid, entry.pw_gid),
            "groups": sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem),
            "home": entry.pw_dir,
            "shell": entry.pw_shell,
            "comment": entry.pw_gecos,
        }
    return users


def read_groups(names):
    groups = {}
    for name in names:
        try:
            groups[name] = {"members": sorted(grp.getgrnam(name).gr_mem)}
        except KeyError:
            continue
    return groups


def read_venv(module, python):
    if not python or not os.access(python, os.X_OK):
        return None
    rc, out, _ = module.run_command([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"])
    if rc != 0:
        return None
    try:
        listed = json.loads(out)
    except ValueError:
        return None
    return sorted("%s==%s" % (re.sub(r"[-_.]+", "-", d["name"]).lower(), d["version"]) for d in listed)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True), checksum=dict(type="str"), content=dict(type="str", no_log=True),
                state=dict(type="str", default="present"), owner=dict(type="str"), group=dict(type="str"),
                mode=dict(type="str"))),
            units=dict(type="list", elements="str", default=[]),
            users=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=[]),
            venv_python=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    bad = [f["path"] for f in p["files"] if not f["path"].startswith("/")
           or f["state"] not in ("present", "file", "directory", "absent")]
    if bad:
        module.fail_json(msg="files: each item needs an absolute path, and a state of present, file, directory or "
                             "absent if any; not so for %s" % bad)
    files, outdated = read_files(p["files"])
    module.exit_json(
        changed=False,
        packages=read_packages(module, p["packages"]),
        files=files,
        files_outdated=outdated,
        units=read_units(module, p["units"]),
        users=read_users(p["users"]),
        groups=read_groups(p["groups"]),
        venv_packages=read_venv(module, p["venv_python"]),
    )


if __name__ == "__main__":
    main()
