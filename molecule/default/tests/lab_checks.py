"""Helpers shared by the whole-lab checks in containers (this folder) and on the VM (tests/vm):
the lab's own values, read through Ansible (never retyped), and the checks both run."""
import json
import time

LAB_VARS = ["lab_hostname", "lab_service", "lab_env", "lab_version", "lab_app_port", "lab_database",
            "lab_table", "lab_postgresql_port", "lab_monitoring_user", "lab_monitoring_password",
            "flask_app_service_name"]


def lab_values(host):
    """The lab's values as the inventory sets them for this host."""
    expr = "{{ {" + ", ".join(f"'{n}': {n}" for n in LAB_VARS) + "} | to_json }}"
    out = host.ansible("ansible.builtin.debug", f"msg={expr}", check=False)["msg"]
    return out if isinstance(out, dict) else json.loads(out)


def wait_for(check, timeout=30, step=1):
    """check()'s first truthy result within timeout seconds, else its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


def assert_every_service_answers(host, lab, timeout=60):
    """After a boot: systemd is up, each unit runs, the app answers and the monitoring user logs in."""
    assert wait_for(lambda: host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded"),
                    timeout=timeout), host.run("systemctl --failed").stdout
    for unit in ("postgresql", "datadog-agent", lab["flask_app_service_name"]):
        assert host.service(unit).is_enabled, unit
        assert wait_for(lambda: host.service(unit).is_running, timeout=timeout), unit
    url = f"http://127.0.0.1:{lab['lab_app_port']}/api/apm"
    get = ("import urllib.request, sys; "
           f"sys.stdout.write(urllib.request.urlopen('{url}', timeout=10).read().decode())")
    assert wait_for(lambda: host.run("python3 -c %s", get).stdout == "Getting APM Started", timeout=timeout)

    def login():
        return host.run("PGPASSWORD=%s psql -h 127.0.0.1 -p %s -U %s -d postgres -XAtc 'select 1'",
                        lab["lab_monitoring_password"], str(lab["lab_postgresql_port"]), lab["lab_monitoring_user"])

    res = wait_for(lambda: (r := login()).rc == 0 and r, timeout=timeout) or login()
    assert res.rc == 0, res.stderr
