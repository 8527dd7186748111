"""Conventions of the roles' files that a converge can't always show: each check reads the YAML itself."""
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in REPO.glob("roles/*/meta/argument_specs.yml")
               if (p.parent.parent / "defaults/main.yml").is_file())
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


def test_every_package_list_refresh_is_the_same_task():
    """One pattern, so the copies can't drift: the same name, module arguments and conditions (but the role's prefix)."""
    refreshes = [(path, task) for path, task in tasks()
                 for args in [task.get("ansible.builtin.apt")] if isinstance(args, dict) and "name" not in args
                 and args.get("update_cache")]
    assert len(refreshes) == 3, refreshes
    shapes = {yaml.safe_dump({k: v for k, v in task.items() if k != "when"})
              + str(task.get("when")).replace(path.parts[1], "ROLE") for path, task in refreshes}
    assert len(shapes) == 1, shapes


def test_set_fact_only_records_what_is_read_once():
    """Derived values are vars (vars/main.yml, or a task's own vars where they read a registered result); the host's
    state is what the modules themselves report. The one set_fact left reads the Datadog definitions from their files
    once, where a template error can be seen."""
    facts = [f"{path}: {task['name']}" for path, task in tasks() if "ansible.builtin.set_fact" in task]
    assert facts == ["roles/datadog_resources/tasks/definitions.yml: "
                     "Definitions are read from their files, with the inventory's values filled in"]


VARS_FILES = sorted(REPO.glob("roles/*/vars/*.yml"))
JINJA = re.compile(r"\{\{(.*?)\}\}", re.S)


def jinja_expressions(node, bare=False):
    """Every Jinja expression in a YAML document: the {{ }} blocks of its strings, and the bare conditions of
    when, that, changed_when, failed_when (whitespace runs counted as one space)."""
    if isinstance(node, dict):
        for key, value in node.items():
            conditional = key in ("when", "that", "changed_when", "failed_when")
            yield from jinja_expressions(value, bare=conditional)
    elif isinstance(node, list):
        for value in node:
            yield from jinja_expressions(value, bare=bare)
    elif isinstance(node, str):
        blocks = JINJA.findall(node) or ([node] if bare else [])
        yield from (" ".join(block.split()) for block in blocks)


@pytest.mark.parametrize("path", TASK_FILES + VARS_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_jinja_expression_is_longer_than_120_characters(path):
    """A reader takes in an expression at a glance: a longer one is split, or becomes a named var."""
    long = [e for e in jinja_expressions(yaml.safe_load(path.read_text())) if len(e) > 120]
    assert long == []


@pytest.mark.parametrize("path", VARS_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_vars_hold_no_jinja_that_writes_yaml(path):
    """A var is a value or one expression, never YAML rendered by Jinja and parsed back (from_yaml)."""
    text = yaml.safe_dump(yaml.safe_load(path.read_text()))  # the values, not the comments
    assert "from_yaml" not in text and "{%" not in text


def test_platform_values_come_from_first_found_vars_files():
    """The models' way: include_vars over <Distribution>-<major>.yml, <Distribution>.yml, default.yml."""
    roles = {path.parts[1] for path, task in tasks() if "ansible.builtin.include_vars" in task}
    assert roles == {"postgresql", "flask_app"}
    for role in roles:
        assert (REPO / "roles" / role / "vars/default.yml").is_file(), role


def test_no_module_of_our_own_re_implements_a_core_one():
    """Modules of our own only where no module exists: the Datadog API resources and verify."""
    modules = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("roles/*/library/*.py"))
    assert modules == ["roles/datadog_resources/library/datadog_resources_apply.py",
                       "roles/lab_verify/library/lab_verify.py"]


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


def test_the_roles_have_defaults_and_specs_to_compare():
    assert {"datadog", "postgresql", "flask_app", "traffic", "datadog_resources", "lab_verify"} <= {r.name for r in ROLES}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_defaults_and_argument_specs_name_the_same_variables(role):
    """defaults/main.yml and every entry point of meta/argument_specs.yml name the same variables.

    A variable in defaults but in no spec escapes the input check and the README's variable table;
    an option in a spec but not in defaults is undefined when nobody sets it. The one exception is
    an option with `required: true`: the caller must give it (the lab does, from its inventory), so
    it has no default, and a default for it would make `required` meaningless. An option that is not
    required but has no `default:` in its spec still needs one in defaults/main.yml: the keys are
    such options, their defaults read secrets, which a spec would print with a rejected argument.
    Every entry point counts (`assert` is an alias of `main` today, but need not stay one).
    """
    defaults = set(yaml.safe_load((role / "defaults/main.yml").read_text()) or {})
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    problems = []
    for entry_point, spec in specs.items():
        options = spec.get("options") or {}
        required = {name for name, option in options.items() if option.get("required")}
        for what, names in [("in defaults/main.yml, not in the spec", defaults - set(options)),
                            ("in the spec, not required, not in defaults/main.yml", set(options) - required - defaults),
                            ("required by the spec, yet in defaults/main.yml", required & defaults)]:
            if names:
                problems.append(f"role {role.name}, entry point {entry_point}: {what}: {', '.join(sorted(names))}")
    assert not problems, "\n".join(problems)


def boolean_options():
    """Every option that a role's argument_specs types bool: (role, name)."""
    for role in ROLES:
        specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
        for name, option in specs["main"]["options"].items():
            if option.get("type") == "bool":
                yield role.name, name


BOOLEANS = sorted(boolean_options())
TESTS = [p for p in list(REPO.glob("tests/**/*.py")) + list(REPO.glob("molecule/**/*.py"))
         if not any(part.startswith((".venv", "__pycache__")) for part in p.parts)]


def test_the_roles_have_boolean_options_to_check():
    assert {"traffic_run", "traffic_timer_enabled", "flask_app_dd_logs_injection", "lab_verify_logs"} <= {
        name for _, name in BOOLEANS}, BOOLEANS


@pytest.mark.parametrize("role, name", BOOLEANS, ids=[name for _, name in BOOLEANS])
def test_every_boolean_is_read_through_the_bool_filter(role, name):
    """argument_specs validate `-e name=false` but don't convert it: the string "false" is truthy, so each use
    in a task, handler, template or vars file reads `name | bool`."""
    uses = []
    for path in (REPO / "roles" / role).rglob("*"):
        if path.suffix in (".yml", ".j2") and "meta" not in path.parts and "defaults" not in path.parts:
            for number, text in enumerate(path.read_text().splitlines(), 1):
                for match in re.finditer(rf"\b{name}\b(?!\s*\|\s*bool\b)", text):
                    if not text.lstrip().startswith("#") and not text.lstrip().startswith(f"{name}:"):
                        uses.append(f"{path.relative_to(REPO)}:{number}: {text.strip()}")
    assert uses == []


@pytest.mark.parametrize("role, name", BOOLEANS, ids=[name for _, name in BOOLEANS])
def test_every_boolean_is_tested_as_a_string_both_ways(role, name):
    """A test passes `-e name=false` and `-e name=true` (strings, as a user types them) and checks the effect."""
    texts = "\n".join(p.read_text() for p in TESTS)
    missing = [f"{name}={value}" for value in ("false", "true") if not re.search(rf"\b{name}={value}\b", texts)]
    assert missing == [], f"no test passes {missing} as an extra var"
