#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: a role's files and directories, with their content, owner, group and mode, in one
remote execution."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_file
short_description: Puts files' content and attributes in place in one remote execution
description:
  - What C(ansible.builtin.copy) with C(content) does for a text file, at the cost of one module
    run: the content travels in the module's arguments (pipelined), so there is no temporary
    directory, upload, C(chmod) or cleanup around it (a changed C(copy) or C(template) costs six
    remote executions, this one).
  - Writes only when the content differs, atomically (a temporary file in the same directory,
    then a rename); then sets owner, group and mode where they differ.
  - Check mode reports what would change and changes nothing; C(--diff) shows the content's diff.
    A task whose content holds a secret sets C(no_log), as it would for C(copy).
  - Render a template with C(lookup('ansible.builtin.template', ...)), read a role's file with
    C(lookup('ansible.builtin.file', ..., rstrip=false)). Works with Python 3.6 and later.
  - One file with I(path) and I(content), or several files and directories with I(files), in the
    order given: a role's whole set costs one module run (the same list can be lab_probe's I(files)).
options:
  path:
    description: The file. Its directory must exist (in check mode, a missing one is reported as a change).
    type: path
  content:
    description: What the file at I(path) holds, as text (UTF-8). Required with I(path).
    type: str
  files:
    description:
      - Instead of I(path) and I(content), in order, each C(path) with either C(content) (a file,
        as above), C(state=directory) (one directory, whose parent must exist), or C(state=absent)
        (the path is removed, a directory with everything in it); and for the first two C(owner),
        C(group) and C(mode). The options I(owner), I(group) and I(mode) of the task are not used.
    type: list
    elements: dict
extends_documentation_fragment: [files]
"""

EXAMPLES = r"""
- name: The app's unit is in place
  lab_file:
    path: /etc/systemd/system/app.service
    content: "{{ lookup('ansible.builtin.template', 'app.service.j2') }}"
    owner: root
    group: root
    mode: "0644"

- name: The check's directory and its configuration are in place
  lab_file:
    files:
      - {path: /etc/app/conf.d, state: directory, owner: root, group: root, mode: "0755"}
      - {path: /etc/app/conf.d/app.conf, content: "port = 8080\n", owner: root, group: root, mode: "0644"}
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
checksum:
  description: SHA-1 of the content the task asked for.
  returned: with I(path)
  type: str
changed_paths:
  description: The paths that were (in check mode, would be) created, written, changed or removed.
  returned: always
  type: list
"""

import hashlib
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write(module, path, content, file_args):
    """CONTENT into PATH: a temporary file in the same directory gets the content and the wanted
    owner, group and mode (else those of the file it replaces), then is renamed over PATH, so the
    file is never seen half-written or with other permissions."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.exists(path):
            old = os.stat(path)
            os.chmod(tmp, old.st_mode & 0o7777)
            os.chown(tmp, old.st_uid, old.st_gid)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        module.set_fs_attributes_if_different(dict(file_args, path=tmp), False)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def diff_of(path, before, content):
    return dict(before_header=path, after_header=path, before="" if before is None else before.decode("utf-8", "replace"),
                after=content.decode("utf-8"))


def put_file(module, path, content, file_args):
    """PATH holds CONTENT with FILE_ARGS' attributes: whether it changed, and the diff if the content did."""
    if os.path.isdir(path):
        module.fail_json(msg="%s is a directory, not a file" % path, path=path)
    before = read(path)
    if before == content:
        return module.set_fs_attributes_if_different(file_args, False), None
    if not os.path.isdir(os.path.dirname(path)) and not module.check_mode:
        module.fail_json(msg="the directory of %s does not exist" % path, path=path)
    if not module.check_mode:
        write(module, path, content, file_args)
    return True, diff_of(path, before, content)


def put_directory(module, path, file_args):
    """PATH is a directory (its parent must exist) with FILE_ARGS' attributes: whether it changed."""
    if os.path.lexists(path) and not os.path.isdir(path):
        module.fail_json(msg="%s exists and is not a directory" % path, path=path)
    if not os.path.isdir(path):
        if module.check_mode:
            return True
        if not os.path.isdir(os.path.dirname(path)):
            module.fail_json(msg="the directory of %s does not exist" % path, path=path)
        os.mkdir(path)
        module.set_fs_attributes_if_different(file_args, True)
        return True
    return module.set_fs_attributes_if_different(file_args, False)


def remove(module, path):
    if not os.path.lexists(path):
        return False
    if not module.check_mode:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def main():
    entry = dict(path=dict(type="path", required=True), content=dict(type="str"),
                 state=dict(type="str", choices=["file", "directory", "absent"], default="file"),
                 owner=dict(type="str"), group=dict(type="str"), mode=dict(type="raw"))
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path"), content=dict(type="str"),
                           files=dict(type="list", elements="dict", options=entry)),
        add_file_common_args=True,
        required_one_of=[("path", "files")],
        mutually_exclusive=[("path", "files"), ("content", "files")],
        required_together=[("path", "content")],
        supports_check_mode=True,
    )
    if module.params["files"] is None:
        path = module.params["path"]
        content = module.params["content"].encode("utf-8")
        changed, diff = put_file(module, path, content, module.load_file_common_arguments(module.params))
        result = dict(path=path, checksum=hashlib.sha1(content).hexdigest(), changed=changed,
                      changed_paths=[path] if changed else [])
        if diff:
            result["diff"] = diff
        module.exit_json(**result)
    # A bad entry fails the call before any entry is put in place.
    for want in module.params["files"]:
        if want["state"] == "file" and want["content"] is None:
            module.fail_json(msg="files: %s needs a content, or a state of directory or absent" % want["path"])
    changed_paths, diffs = [], []
    for want in module.params["files"]:
        path, state = want["path"], want["state"]
        file_args = module.load_file_common_arguments(want)
        if state == "absent":
            changed = remove(module, path)
        elif state == "directory":
            changed = put_directory(module, path, file_args)
        else:
            changed, diff = put_file(module, path, want["content"].encode("utf-8"), file_args)
            if diff:
                diffs.append(diff)
        if changed:
            changed_paths.append(path)
    result = dict(changed=bool(changed_paths), changed_paths=changed_paths)
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
