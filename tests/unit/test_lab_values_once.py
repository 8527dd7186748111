"""Every lab-wide value is written once, in inventory/group_vars/all/lab.yml.

Roles' defaults and argument_specs document a standalone role's own fallbacks and are not
scanned; everything that makes up the lab (tasks, templates, files, definitions, playbooks,
site.yml, the Vagrantfile, the scenarios and their tests) must read the lab_* variables instead of
retyping their values. Markdown is prose (a role's README shows its argument_specs' defaults in
its generated table), and is not scanned either.
"""
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = yaml.safe_load((REPO / "inventory/group_vars/all/lab.yml").read_text())
SCANNED = ["site.yml", "Vagrantfile", "playbooks", "roles", "molecule", "inventory/group_vars"]
SKIPPED_PARTS = {"defaults", "meta", "__pycache__"}
# Values that are also ordinary words or Datadog's own constants, not lab choices.
NOT_DISTINCTIVE = {"lab_monitoring_user", "datadog_site"}
# Prose may name the lab's objects: comments, task and play names.
PROSE = re.compile(r"^\s*(#|-?\s*name:|\"\"\"|description:)")


def distinctive_values():
    """Values long or specific enough that seeing them elsewhere means they were retyped."""
    for name, value in LAB.items():
        if name in NOT_DISTINCTIVE:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, int) and v > 1024:
                yield name, re.compile(rf"(?<![\w.]){v}(?![\w.])")
            elif isinstance(v, str) and "{{" not in v and len(v) >= 6:
                yield name, re.compile(re.escape(v))


def scanned_files():
    for entry in SCANNED:
        path = REPO / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(REPO)
            if SKIPPED_PARTS & set(rel.parts) or rel.name == "lab.yml" or rel.suffix == ".md":
                continue
            lines = f.read_text(errors="replace").splitlines()
            yield rel, "\n".join("" if PROSE.match(line) else line for line in lines)


@pytest.mark.parametrize(("name", "pattern"), list(distinctive_values()), ids=lambda x: getattr(x, "pattern", x))
def test_lab_value_is_not_retyped(name, pattern):
    hits = [f"{rel}:{text[:m.start()].count(chr(10)) + 1}"
            for rel, text in scanned_files() for m in pattern.finditer(text)]
    assert not hits, f"{name}'s value is retyped in {hits}: read {name} instead"


def test_the_scan_sees_the_lab_values():
    names = {name for name, _ in distinctive_values()}
    assert {"lab_hostname", "lab_host_tags", "lab_app_port", "lab_table"} <= names
