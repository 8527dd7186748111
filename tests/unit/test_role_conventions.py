"""Conventions of the roles' task files that a converge can't always show: each check reads the YAML itself."""
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TASK_FILES = sorted(REPO.glob("roles/*/tasks/*.yml")) + sorted(REPO.glob("roles/*/handlers/*.yml"))
# Everything the lab ships or documents (not the tools' folders).
SHIPPED = [p for p in REPO.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".md", ".py", ".j2", ".sh", "")
           and not any(part.startswith((".venv", ".build", ".git", ".vagrant", ".secrets", ".pytest_cache", "__pycache__"))
                       for part in p.relative_to(REPO).parts)]


def tasks():
    for path in TASK_FILES:
        for task in yaml.safe_load(path.read_text()) or []:
            yield path.relative_to(REPO), task


def test_a_package_list_refresh_never_reports_changed():
    """apt update_cache alone changes no configuration: a rerun an hour later must still be changed=0."""
    offenders = [f"{path}: {task['name']}" for path, task in tasks()
                 for args in [task.get("ansible.builtin.apt")] if isinstance(args, dict)
                 and args.get("update_cache") and "name" not in args and task.get("changed_when") is not False]
    assert offenders == []


def test_postgresql_modules_get_login_port_not_the_deprecated_port_alias():
    uses = [(path, task) for path, task in tasks()
            if any(key.startswith("community.postgresql.") for key in task)]
    assert uses, "no community.postgresql task found"
    offenders = [f"{path}: {task['name']}" for path, task in uses
                 for key, args in task.items() if key.startswith("community.postgresql.") and "port" in args]
    assert offenders == []


@pytest.mark.parametrize("old_name", ["datadog_apt_key_url"])
def test_a_name_the_official_role_deprecated_is_not_used(old_name):
    """The official role deprecated datadog_apt_key_url for an expired key; ours was another thing, so renamed."""
    offenders = [str(p.relative_to(REPO)) for p in SHIPPED
                 if p.name != Path(__file__).name and old_name in p.read_text(errors="replace")]
    assert offenders == []
