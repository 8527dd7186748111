#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: make Datadog hold the defined dashboards, monitors and downtimes, or remove the ones it made."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: datadog_resources_apply
short_description: Create, update or delete Datadog dashboards, monitors and v2 downtimes from definitions
description:
  - Checks every definition first, offline, against datadog-api-client's models, and sends nothing if
    one is bad; the message names the file and the path of each bad field (unknown widget type, bad
    enum value, wrong type, unknown or missing field).
  - Finds existing objects by title or name plus the managed-by mark, creates what is missing,
    updates only what differs, and with I(state=absent) deletes only objects carrying the mark.
  - Supports check mode. Retries 429 (honouring X-RateLimit-Reset) and 5xx within I(retry_timeout).
options:
  state: {description: Whether the objects exist., type: str, choices: [present, absent], default: present}
  api_url: {description: Base URL of the Datadog API, such as https://api.datadoghq.com., type: str, required: true}
  api_key: {description: Datadog API key., type: str, required: true, no_log: true}
  app_key: {description: Datadog application key., type: str, required: true, no_log: true}
  managed_by: {description: The name in the managed-by mark., type: str, required: true}
  dashboards: {description: Dashboard bodies (v1 Dashboard)., type: list, elements: dict, default: []}
  monitors: {description: Monitor bodies (v1 Monitor)., type: list, elements: dict, default: []}
  downtimes:
    description: Downtime definitions, each C(name), C(monitor) (a monitor definition's name) and C(attributes).
    type: list
    elements: dict
    default: []
  labels:
    description: Where each definition comes from, per kind (dashboards, monitors, downtimes), for messages.
    type: dict
    default: {}
  retry_timeout: {description: Seconds a request is retried for on 429 and 5xx., type: float, default: 60}
  retry_backoff: {description: First wait in seconds after a 5xx (doubled each time)., type: float, default: 1}
  request_timeout: {description: Seconds one request may take., type: float, default: 30}
requirements: [datadog-api-client]
"""

EXAMPLES = r"""
- name: Dashboards, monitors and downtimes in Datadog match their definitions
  datadog_resources_apply:
    api_url: https://api.datadoghq.com
    api_key: "{{ lookup('ansible.builtin.env', 'DD_API_KEY') }}"
    app_key: "{{ lookup('ansible.builtin.env', 'DD_APP_KEY') }}"
    managed_by: "{{ datadog_resources_managed_by }}"
    monitors: "{{ my_monitors }}"
  no_log: true
"""

RETURN = r"""
problems: {description: Every problem of the definitions, as "where - what"., type: list, returned: invalid definitions}
objects: {description: Per object, kind, name, id, action (create, update, delete, none) and changes., type: list,
          returned: always}
report: {description: One line per object that changed (or would, in check mode)., type: list, returned: always}
requests: {description: Number of HTTP requests made, retries included., type: int, returned: always}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.datadog_resources.client import APP_KEY_SOURCES, API_KEY_SOURCES, DatadogClient, DatadogError
from ansible.module_utils.datadog_resources.definitions import check_definitions
from ansible.module_utils.datadog_resources.schema import HAS_DATADOG_API_CLIENT
from ansible.module_utils.datadog_resources.sync import Sync, report

SHOWN = 20


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            api_url=dict(type="str", required=True),
            api_key=dict(type="str", required=True, no_log=True),
            app_key=dict(type="str", required=True, no_log=True),
            managed_by=dict(type="str", required=True),
            dashboards=dict(type="list", elements="dict", default=[]),
            monitors=dict(type="list", elements="dict", default=[]),
            downtimes=dict(type="list", elements="dict", default=[]),
            labels=dict(type="dict", default={}),
            retry_timeout=dict(type="float", default=60.0),
            retry_backoff=dict(type="float", default=1.0),
            request_timeout=dict(type="float", default=30.0),
        ),
        supports_check_mode=True,
    )
    if not HAS_DATADOG_API_CLIENT:
        module.fail_json(msg=missing_required_lib("datadog-api-client"))
    params = module.params
    problems = check_definitions(params["dashboards"], params["monitors"], params["downtimes"], params["managed_by"],
                                 params["labels"])
    if problems:
        shown = problems[:SHOWN] + (["... and %d more" % (len(problems) - SHOWN)] if len(problems) > SHOWN else [])
        module.fail_json(msg="Invalid Datadog definitions (nothing was sent to Datadog):\n- " + "\n- ".join(shown),
                         problems=problems)
    for what, key, sources in (("API key", "api_key", API_KEY_SOURCES),
                               ("application key", "app_key", APP_KEY_SOURCES)):
        if not params[key].strip():
            module.fail_json(msg="No Datadog %s: set %s (nothing was sent to Datadog)." % (what, sources))
    if not params["api_url"].startswith(("https://", "http://")):
        module.fail_json(msg="api_url must be an http(s) URL such as https://api.datadoghq.com, got %r"
                         % params["api_url"])

    client = DatadogClient(params["api_url"], params["api_key"].strip(), params["app_key"].strip(),
                           retry_timeout=params["retry_timeout"], retry_backoff=params["retry_backoff"],
                           request_timeout=params["request_timeout"])
    try:
        objects = Sync(client, params["managed_by"], module.check_mode).run(
            params["state"], params["dashboards"], params["monitors"], params["downtimes"])
    except DatadogError as err:
        module.fail_json(msg=str(err), requests=client.attempts)
    except Exception as err:  # keep even a bug's message inside fail_json, which masks the keys
        module.fail_json(msg="Reconciling Datadog objects failed: %s: %s" % (type(err).__name__, err),
                         exception=traceback.format_exc(), requests=client.attempts)
    finally:
        client.close()
    changed = any(o["action"] != "none" or o["removed_duplicates"] for o in objects)
    module.exit_json(changed=changed, objects=objects, report=report(objects, module.check_mode),
                     requests=client.attempts)


if __name__ == "__main__":
    main()
