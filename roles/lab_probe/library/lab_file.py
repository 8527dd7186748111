#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: one file with the given content, owner, group and mode, in one remote execution."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_file
short_description: Puts a file's content and attributes in place in one remote execution
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
options:
  path:
    description: The file. Its directory must exist (in check mode, a missing one is reported as a change).
    type: path
    required: true
  content:
    description: What the file holds, as text (UTF-8).
    type: str
    required: true
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
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
checksum:
  description: SHA-1 of the content the task asked for.
  returned: always
  type: str
"""

import hashlib
import os
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


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), content=dict(type="str", required=True)),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    content = module.params["content"].encode("utf-8")
    result = dict(path=path, checksum=hashlib.sha1(content).hexdigest(), changed=False)
    if os.path.isdir(path):
        module.fail_json(msg="%s is a directory, not a file" % path, **result)
    file_args = module.load_file_common_arguments(module.params)
    before = read(path)
    if before != content:
        result["changed"] = True
        result["diff"] = dict(before_header=path, after_header=path,
                              before="" if before is None else before.decode("utf-8", "replace"),
                              after=content.decode("utf-8"))
        if not os.path.isdir(os.path.dirname(path)) and not module.check_mode:
            module.fail_json(msg="the directory of %s does not exist" % path, **result)
        if module.check_mode:
            module.exit_json(**result)
        write(module, path, content, file_args)
    result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
