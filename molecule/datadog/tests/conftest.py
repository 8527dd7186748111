"""Shared by the datadog scenario's tests: values from the inventory the host was converged with."""
import pytest
from lab_testinfra import inventory_values


@pytest.fixture(scope="module")
def lab(host):
    # The pin: the inventory's, else the role's default.
    return inventory_values(host, ["lab_hostname", "lab_host_tags", "lab_database", "lab_table", "lab_monitoring_user",
                                   "lab_apm_port", "lab_dogstatsd_port", "datadog_site", "datadog_agent_version",
                                   "lab_env", "lab_dbm", "lab_postgresql_port"],
                            role="datadog")
