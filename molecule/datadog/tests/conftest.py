"""Shared by the datadog scenario's tests: values from the inventory the host was converged with."""
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]


def inventory_string(host, name, default):
    """NAME (a string) as the inventory sets it for this host; DEFAULT when it doesn't."""
    return host.ansible("ansible.builtin.debug", f"msg={{{{ {name} | default('') }}}}", check=False)["msg"] or default


@pytest.fixture(scope="module")
def lab(host):
    names = ["lab_hostname", "lab_host_tags", "lab_database", "lab_table", "lab_monitoring_user",
             "lab_apm_port", "lab_dogstatsd_port", "datadog_site"]
    expression = "{" + ", ".join(f"'{n}': {n}" for n in names) + "}"
    values = host.ansible("ansible.builtin.debug", f"msg={{{{ {expression} }}}}", check=False)["msg"]
    # The pin: the inventory's, else the role's default.
    defaults = yaml.safe_load((ROOT / "roles/datadog/defaults/main.yml").read_text())
    values["datadog_agent_version"] = inventory_string(host, "datadog_agent_version", defaults["datadog_agent_version"])
    return values
