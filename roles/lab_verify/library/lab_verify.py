#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: ask Datadog, read-only, whether the lab's results arrived; one result per check."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_verify
short_description: Asks Datadog (read-only) whether the lab's host, metrics, traces, logs and resources arrived
description:
  - One round of checks through datadog-api-client; only GET calls, plus the logs search (a read-only POST).
  - Each result has C(check), C(passed), C(line) (what was seen, or what to look at) and C(url).
  - Never fails by itself when a check fails (the role decides, after waiting); C(forbidden) is true when
    Datadog answered 403, which waiting can't fix. Keys never appear in a result.
options:
  api_url: {description: Base URL of the Datadog API., type: str, required: true}
  api_key: {description: Datadog API key., type: str, required: true, no_log: true}
  app_key: {description: Datadog application key (hosts, metrics, logs, monitors, dashboards read)., type: str,
            required: true, no_log: true}
  site: {description: The Datadog site (for the web URLs)., type: str, required: true}
  host: {description: The host name the agent reports., type: str, required: true}
  host_tags: {description: Tags the host must carry., type: list, elements: str, required: true}
  custom_metric: {description: The custom check's metric., type: str, required: true}
  custom_metric_tag: {description: A tag its points carry., type: str, required: true}
  custom_interval: {description: Seconds between its points., type: int, required: true}
  database: {description: The database of the Postgres relation metrics., type: str, required: true}
  table: {description: The relation (table)., type: str, required: true}
  dbm: {description: Whether Database Monitoring is on (query metrics for the database are then expected)., type: bool,
        required: true}
  service: {description: The APM service., type: str, required: true}
  env: {description: The APM env., type: str, required: true}
  routes: {description: APM resources that must have hits (such as "GET /api/apm")., type: list, elements: str,
           required: true}
  runtime: {description: Whether the app sends runtime metrics (runtime.python.* are then expected)., type: bool,
            required: true}
  logs: {description: Whether log collection is on (logs with trace ids are then expected)., type: bool,
         required: true}
  managed_by: {description: The mark of the lab's dashboards, monitor and downtimes., type: str, required: true}
  expected: {description: How many dashboards, monitors, downtimes., type: dict, required: true}
  since: {description: Epoch seconds; only data newer than this counts., type: float, required: true}
  checks:
    description: The checks to run (all by default); C(resources) is the dashboards, monitor and downtimes.
    type: list
    elements: str
    choices: [host, my_metric, postgres, dbm, apm, db_spans, runtime, logs, resources]
    default: [host, my_metric, postgres, dbm, apm, db_spans, runtime, logs, resources]
  request_timeout: {description: Seconds one request may take., type: float, default: 30}
requirements: [datadog-api-client]
"""

EXAMPLES = r"""
- name: Datadog shows the lab's results
  lab_verify:
    api_url: https://api.datadoghq.com
    api_key: "{{ lookup('ansible.builtin.env', 'DD_API_KEY') }}"
    app_key: "{{ lookup('ansible.builtin.env', 'DD_APP_KEY') }}"
    site: datadoghq.com
    host: "{{ lab_hostname }}"
    host_tags: "{{ lab_host_tags }}"
    custom_metric: my_metric
    custom_metric_tag: type:custom
    custom_interval: 45
    database: "{{ lab_database }}"
    table: "{{ lab_table }}"
    service: "{{ lab_service }}"
    env: "{{ lab_env }}"
    routes: [GET /]
    dbm: true
    runtime: true
    logs: true
    managed_by: "{{ lab_managed_by }}"
    expected: {dashboards: 3, monitors: 1, downtimes: 2}
    since: "{{ now(utc=true).timestamp() - 900 }}"
"""

RETURN = r"""
results: {description: One dict per check (check, passed, line, url)., type: list, returned: always}
lines: {description: One text line per check, "passed" or "FAILED" first., type: list, returned: always}
failed_checks: {description: Names of the checks that failed., type: list, returned: always}
forbidden: {description: Datadog answered 403 (a key problem; waiting won't help)., type: bool, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible.module_utils.lab_verify_checks import ALL_CHECKS, HAS_CLIENT, Api, run_checks  # noqa: E402

REQUIRED_STR = ("api_url", "site", "host", "custom_metric", "custom_metric_tag", "database", "table", "service", "env",
                "managed_by")
SPEC_KEYS = ("site", "host", "host_tags", "custom_metric", "custom_metric_tag", "custom_interval", "database", "table",
             "dbm", "service", "env", "routes", "runtime", "logs", "managed_by", "expected", "since", "checks")


def main():
    argument_spec = dict((name, dict(type="str", required=True)) for name in REQUIRED_STR)
    argument_spec.update(
        api_key=dict(type="str", required=True, no_log=True),
        app_key=dict(type="str", required=True, no_log=True),
        host_tags=dict(type="list", elements="str", required=True),
        routes=dict(type="list", elements="str", required=True),
        custom_interval=dict(type="int", required=True),
        logs=dict(type="bool", required=True),
        dbm=dict(type="bool", required=True),
        runtime=dict(type="bool", required=True),
        expected=dict(type="dict", required=True),
        since=dict(type="float", required=True),
        checks=dict(type="list", elements="str", default=list(ALL_CHECKS), choices=list(ALL_CHECKS)),
        request_timeout=dict(type="float", default=30),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    if not HAS_CLIENT:
        module.fail_json(msg=missing_required_lib("datadog-api-client"))
    params = module.params
    api = Api(params["api_url"], params["api_key"], params["app_key"], params["request_timeout"])
    try:
        results, forbidden = run_checks(api, dict((k, params[k]) for k in SPEC_KEYS))
    finally:
        api.close()
    lines = ["%s  %-10s %s%s" % ("passed" if r["passed"] else "FAILED", r["check"], r["line"],
                                 "" if r["passed"] or not r["url"] else "  -> " + r["url"]) for r in results]
    module.exit_json(changed=False, results=results, lines=lines, forbidden=forbidden,
                     failed_checks=[r["check"] for r in results if not r["passed"]])


if __name__ == "__main__":
    main()
