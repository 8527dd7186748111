"""The datadog role's datadog.yaml, rendered by Ansible from the role's defaults and vars (no host)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "datadog"


def render(tmp_path, **variables):
    (tmp_path / "case.json").write_text(json.dumps({"datadog_api_key": "unit-test-key", **variables}))
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_CONFIG": str(ROLE.parents[1] / "ansible.cfg"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    template = "{{ lookup('ansible.builtin.template', '%s') }}" % (ROLE / "templates" / "datadog.yaml.j2")
    res = subprocess.run(
        ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-m", "ansible.builtin.debug",
         "-a", f"msg={template}", "-e", f"@{ROLE / 'defaults/main.yml'}", "-e", f"@{ROLE / 'vars/main.yml'}",
         "-e", f"@{tmp_path / 'case.json'}"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    return yaml.safe_load(out["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"])


def test_config_keys_join_api_key_and_site(tmp_path):
    cfg = render(tmp_path, datadog_site="datadoghq.eu",
                 datadog_config={"hostname": "h.example", "tags": ["a:b", "c:d"], "apm_config": {"enabled": True}})
    assert cfg == {"api_key": "unit-test-key", "site": "datadoghq.eu", "hostname": "h.example",
                   "tags": ["a:b", "c:d"], "apm_config": {"enabled": True}}


def test_a_check_with_logs_turns_log_collection_on(tmp_path):
    checks = {"nginx": {"logs": [{"type": "file", "path": "/var/log/nginx/access.log", "service": "web"}]}}
    assert render(tmp_path, datadog_checks=checks)["logs_enabled"] is True


def test_without_logs_the_key_is_left_out(tmp_path):
    assert "logs_enabled" not in render(tmp_path, datadog_checks={"custom": {"instances": [{}]}})


def test_datadog_config_has_the_last_word(tmp_path):
    checks = {"nginx": {"logs": [{"type": "file", "path": "/x.log", "service": "web"}]}}
    assert render(tmp_path, datadog_checks=checks, datadog_config={"logs_enabled": False})["logs_enabled"] is False
