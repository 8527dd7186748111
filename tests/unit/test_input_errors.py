"""Bad input to any role stops the run before any change, names the variable, and prints no secret.

Every kind of input check of every role is triggered: an argument_specs choice, type and required
argument, and each role's asserts. The keys and the database password are long distinctive strings;
the whole output, at default verbosity and at -vvv, must hold none of them (nor a piece of them).
site.yml checks all its roles' input in its first play, which never connects to a host, so these
runs need no host; the traffic and lab_verify roles (not in site.yml) and the required arguments are
driven through a one-role playbook on localhost, whose first tasks are the checks. Every assert of
every roles/*/tasks/assert.yml has a case here or in test_postgresql_inputs.py (checked below).
"""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from lab_ansible import ROOT, environment, run_playbook
from test_postgresql_inputs import CASES as POSTGRESQL_CASES

API_KEY = "apikey-" + "5d1e9b7c3a" * 3
APP_KEY = "appkey-" + "c4a8e2f6b0" * 4
DB_PASSWORD = "dbpass-" + "9e7c5a3b1d" * 2
APP_DB_PASSWORD = "appdbpass-" + "7b3f1d9a5c" * 2
PIECES = (API_KEY, APP_KEY, DB_PASSWORD, APP_DB_PASSWORD, "5d1e9b7c3a", "c4a8e2f6b0", "9e7c5a3b1d", "7b3f1d9a5c")
SECRETS = {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY, "LAB_DATADOG_DB_PASSWORD": DB_PASSWORD,
           "LAB_APP_DB_PASSWORD": APP_DB_PASSWORD}

ENVIRONMENT_LINES = ("flask_app_environment, flask_app_dd_service, flask_app_dd_env, flask_app_dd_version must not "
                     "contain quotes, backslashes, % or white space")
# (case id, environment changes, extra vars, words the message must hold)
SITE_CASES = [
    ("api_key_unset", {"DD_API_KEY": ""}, {}, ["datadog_api_key must be set", "DD_API_KEY"]),
    ("site_typo", {"DD_SITE": "datadoghq.con"}, {}, ["value of datadog_site must be one of", "got: datadoghq.con"]),
    ("agent_tags_string", {}, {"datadog_config": {"tags": "team:web"}}, ["datadog_config.tags must be a list"]),
    ("agent_checks_shape", {}, {"datadog_checks": {"postgres": "x"}}, ["datadog_checks must map each check"]),
    ("agent_custom_check_alone", {}, {"datadog_custom_checks": {"lonely": "x.py"}},
     ["datadog_custom_checks needs a datadog_checks entry"]),
    ("agent_repo_unsigned", {}, {"datadog_apt_repo": "deb https://apt.datadoghq.com/ stable 7"},
     ["datadog_apt_repo must be a one-line apt source signed by"]),
    ("pg_port_type", {}, {"postgresql_port": "not-a-port"}, ["postgresql_port", "int"]),
    ("pg_port_range", {}, {"postgresql_port": 70000}, ["postgresql_port must be a TCP port"]),
    ("pg_auth_choice", {}, {"postgresql_monitoring_auth_method": "trust"},
     ["value of postgresql_monitoring_auth_method must be one of"]),
    ("pg_password_empty", {"LAB_DATADOG_DB_PASSWORD": None}, {"postgresql_monitoring_password": ""},
     ["postgresql_monitoring_password must be set"]),
    ("pg_table", {}, {"postgresql_table": "Large Test"}, ["postgresql_table must be a plain lower-case SQL identifier"]),
    ("pg_dbm_type", {}, {"postgresql_dbm": "maybe"}, ["postgresql_dbm", "bool"]),
    ("pg_app_user_reserved", {}, {"postgresql_app_user": "pg_reader"},
     ["postgresql_app_user must be empty (no app user) or a plain lower-case role name", "(got 'pg_reader')"]),
    ("pg_app_password_empty", {"LAB_APP_DB_PASSWORD": None}, {"postgresql_app_password": ""},
     ["postgresql_app_password must be set when postgresql_app_user is"]),
    ("app_port", {}, {"flask_app_port": 0}, ["flask_app_port must be a TCP port"]),
    ("app_workers_type", {}, {"flask_app_workers": "many"}, ["flask_app_workers", "int"]),
    ("app_workers_range", {}, {"flask_app_workers": 100}, ["flask_app_workers must be a number of gunicorn workers"]),
    ("app_trace_port", {}, {"flask_app_dd_trace_agent_port": 0}, ["flask_app_dd_trace_agent_port must be a TCP port"]),
    ("app_dogstatsd_port", {}, {"flask_app_dd_dogstatsd_port": 70000},
     ["flask_app_dd_dogstatsd_port must be a TCP port", "(got 70000)"]),
    ("app_dbm_mode", {}, {"flask_app_dd_dbm_propagation_mode": "everything"},
     ["value of flask_app_dd_dbm_propagation_mode must be one of: disabled, service, full", "got: everything"]),
    ("app_runtime_metrics_type", {}, {"flask_app_dd_runtime_metrics_enabled": "maybe"},
     ["flask_app_dd_runtime_metrics_enabled", "bool"]),
    ("app_profiling_type", {}, {"flask_app_dd_profiling_enabled": "maybe"}, ["flask_app_dd_profiling_enabled", "bool"]),
    ("app_db_host", {}, {"flask_app_db_host": "db host"},
     ["flask_app_db_host must be a host name or an IP address", "(got 'db host')"]),
    ("app_db_port", {}, {"flask_app_db_port": 0}, ["flask_app_db_port must be a TCP port", "(got 0)"]),
    ("app_db_port_type", {}, {"flask_app_db_port": "postgres"}, ["flask_app_db_port", "int"]),
    ("app_db_name_empty", {}, {"flask_app_db_name": " "}, ["flask_app_db_name must be a non-empty database name"]),
    ("app_db_table", {}, {"flask_app_db_table": "large_test; drop table x"},
     ["flask_app_db_table must be a plain lower-case SQL identifier", "(got 'large_test; drop table x')"]),
    ("app_db_user", {}, {"flask_app_db_user": "App Reader"},
     ["flask_app_db_user must be empty (no database) or a plain lower-case role name", "(got 'App Reader')"]),
    ("app_db_password_empty", {"LAB_APP_DB_PASSWORD": None}, {"flask_app_db_password": ""},
     ["flask_app_db_password must be set when flask_app_db_user is"]),
    ("app_dir_comma", {}, {"flask_app_dir": "/opt/app,x"},
     ["flask_app_dir must be an absolute path of letters", "(got '/opt/app,x')"]),
    ("app_dir_home", {}, {"flask_app_dir": "/home/app"}, ["flask_app_dir must be an absolute path", "outside /home"]),
    ("app_service_suffix", {}, {"flask_app_service_name": "flask-app.service"},
     ["flask_app_service_name must be a plain systemd unit name without .service"]),
    ("app_user_root", {}, {"flask_app_user": "root"}, ["flask_app_user must be a system user name other than root"]),
    ("app_group_root", {}, {"flask_app_group": "root"}, ["flask_app_group must be a group name other than root"]),
    ("app_dd_service_empty", {}, {"flask_app_dd_service": ""},
     ["flask_app_dd_service must be a non-empty service name"]),
    ("app_agent_host_empty", {}, {"flask_app_dd_agent_host": " "},
     ["flask_app_dd_agent_host must be the agent's host"]),
    ("app_env_names", {}, {"flask_app_environment": {"dd_tags": "team:web"}},
     ["flask_app_environment must map environment variable names", "(got ['dd_tags'])"]),
    # Each character that can't go into an Environment="..." line, in one of the four variables.
    ("app_env_space", {}, {"flask_app_dd_version": "1 0"}, [ENVIRONMENT_LINES]),
    ("app_env_backslash", {}, {"flask_app_dd_env": "lab\\x"}, [ENVIRONMENT_LINES]),
    ("app_env_quote", {}, {"flask_app_environment": {"DD_TAGS": 'team:"web"'}}, [ENVIRONMENT_LINES]),
    ("app_env_percent", {}, {"flask_app_dd_service": "flask%app"}, [ENVIRONMENT_LINES]),
    ("resources_state", {}, {"datadog_resources_state": "bogus"},
     ["value of datadog_resources_state must be one of: present, absent"]),
    ("resources_api_key_empty", {}, {"datadog_resources_api_key": ""},
     ["datadog_resources_api_key must be set", "DD_API_KEY"]),
    # Without DD_APP_KEY site.yml skips the resources (test_site_validates_first.py); asked for by tag, they need it.
    ("resources_app_key_unset", {"DD_APP_KEY": "", "ANSIBLE_RUN_TAGS": "resources"}, {},
     ["datadog_resources_app_key must be set", "DD_APP_KEY"]),
    ("resources_site", {}, {"datadog_resources_site": "Datadog HQ"},
     ["datadog_resources_site must be a Datadog site", "(got 'Datadog HQ')"]),
    ("resources_managed_by", {}, {"datadog_resources_managed_by": "Ansible Lab"},
     ["datadog_resources_managed_by must be lowercase letters"]),
    ("resources_host_empty", {}, {"datadog_resources_host": ""},
     ["datadog_resources_host must be the lab host's name, not empty", "from lab.yml; got"]),
    ("resources_service_empty", {}, {"datadog_resources_service": " "}, ["datadog_resources_service must be the app's service"]),
    ("resources_env_empty", {}, {"datadog_resources_env": ""}, ["datadog_resources_env must be the app's env"]),
    ("resources_database_empty", {}, {"datadog_resources_database": ""}, ["datadog_resources_database must be the lab's database"]),
    ("resources_table_empty", {}, {"datadog_resources_table": " "},
     ["datadog_resources_table must be the lab's table, not empty"]),
    ("resources_retry", {}, {"datadog_resources_retry_timeout": 0},
     ["datadog_resources_retry_timeout must be a number of seconds above 0"]),
    ("resources_backoff", {}, {"datadog_resources_retry_backoff": -1},
     ["datadog_resources_retry_backoff must be a number of seconds, 0 or more"]),
    ("resources_request_timeout", {}, {"datadog_resources_request_timeout": 0},
     ["datadog_resources_request_timeout must be a number of seconds above 0"]),
    ("resources_warning", {}, {"datadog_resources_my_metric_warning": 900},
     ["datadog_resources_my_metric_warning must be below"]),
    ("resources_url", {}, {"datadog_api_url": "ftp://x"},
     ["datadog_resources_api_url (datadog_api_url) must be the API's base URL", "(got 'ftp://x')"]),
]
ROLE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles: [{role}]
"""
# (case id, role, extra vars, words the message must hold)
# lab_verify's required arguments (the lab maps them from lab.yml in the inventory, not read here).
LAB_VERIFY = {"lab_verify_host": "bens.datadog.application", "lab_verify_host_tags": ["team:web"],
              "lab_verify_service": "flask-app", "lab_verify_env": "lab", "lab_verify_database": "new_db",
              "lab_verify_table": "large_test"}
ROLE_CASES = [
    ("traffic_seconds", "traffic", {"traffic_max_seconds": 0}, ["traffic_max_seconds must be 1-3600"]),
    ("traffic_type", "traffic", {"traffic_bursts": "lots"}, ["traffic_bursts", "int"]),
    ("traffic_bursts", "traffic", {"traffic_bursts": 100001}, ["traffic_bursts must be 0-100000 (got 100001)"]),
    ("traffic_requests", "traffic", {"traffic_requests_per_route": -1},
     ["traffic_requests_per_route must be 0-100000 (got -1)"]),
    ("traffic_sql_rounds", "traffic", {"traffic_sql_rounds": -1}, ["traffic_sql_rounds must be 0-100000"]),
    ("traffic_rows", "traffic", {"traffic_rows": -1}, ["traffic_rows must be 0-100000 (got -1)"]),
    ("traffic_url", "traffic", {"traffic_app_url": "localhost:5002"}, ["traffic_app_url must be an http(s) URL"]),
    ("pg_required", "postgresql", {}, ["missing required arguments: postgresql_monitoring_password"]),
    # A role alone, given an app user without its password (the lab's inventory is not read here).
    ("pg_app_password_role", "postgresql", {"postgresql_monitoring_password": DB_PASSWORD, "postgresql_app_user": "reader"},
     ["postgresql_app_password must be set when postgresql_app_user is"]),
    ("app_db_password_role", "flask_app", {"flask_app_db_user": "reader"},
     ["flask_app_db_password must be set when flask_app_db_user is"]),
    ("resources_required", "datadog_resources", {}, ["missing required arguments", "datadog_resources_host"]),
    ("agent_key_unset_role", "datadog", {"datadog_api_key": ""}, ["datadog_api_key must be set"]),
    ("verify_api_key_empty", "lab_verify", dict(LAB_VERIFY, lab_verify_api_key=""),
     ["lab_verify_api_key must be set (it is empty)", "DD_API_KEY"]),
    ("verify_app_key_empty", "lab_verify", dict(LAB_VERIFY, lab_verify_app_key=""),
     ["lab_verify_app_key must be set (it is empty)", "DD_APP_KEY"]),
    ("verify_url", "lab_verify", dict(LAB_VERIFY, datadog_api_url="ftp://x"),
     ["lab_verify_api_url (datadog_api_url) must be the API's base URL", "(got 'ftp://x')"]),
    ("verify_expected", "lab_verify", dict(LAB_VERIFY, lab_verify_expected={"dashboards": 2}),
     ["lab_verify_expected must have exactly the keys dashboards, monitors, downtimes", "(got ['dashboards'])"]),
    ("verify_since", "lab_verify", dict(LAB_VERIFY, lab_verify_since="yesterday"),
     ["lab_verify_since must be empty or epoch seconds", "(got 'yesterday')"]),
    ("verify_window", "lab_verify", dict(LAB_VERIFY, lab_verify_window=0),
     ["lab_verify_window must be a number of seconds above 0 (got 0)"]),
    ("verify_poll", "lab_verify", dict(LAB_VERIFY, lab_verify_poll=0), ["lab_verify_poll must be a number of seconds"]),
    ("verify_request_timeout", "lab_verify", dict(LAB_VERIFY, lab_verify_request_timeout=-5),
     ["lab_verify_request_timeout must be a number of seconds above 0 (got -5)"]),
    ("verify_custom_interval", "lab_verify", dict(LAB_VERIFY, lab_verify_custom_interval=0),
     ["lab_verify_custom_interval must be a number of seconds"]),
    ("verify_timeout", "lab_verify", dict(LAB_VERIFY, lab_verify_timeout=-1),
     ["lab_verify_timeout must be 0 or more seconds (got -1)"]),
    ("verify_dbm_type", "lab_verify", dict(LAB_VERIFY, lab_verify_dbm="maybe"), ["lab_verify_dbm", "bool"]),
    ("verify_runtime_type", "lab_verify", dict(LAB_VERIFY, lab_verify_runtime_metrics="maybe"),
     ["lab_verify_runtime_metrics", "bool"]),
    ("verify_checks_choice", "lab_verify", dict(LAB_VERIFY, lab_verify_checks=["dbm", "profiles"]),
     ["lab_verify_checks", "profiles"]),
]
VERBOSITY = {"default": [], "vvv": ["-vvv"]}


def _site(case, verbosity, tmp):
    _, env_changes, extra, _ = case
    env = environment(**dict(SECRETS, **env_changes))
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
    return run_playbook("site.yml", "-e", json.dumps(extra), *VERBOSITY[verbosity], env=env)


def _role(case, verbosity, tmp):
    name, role, extra, _ = case
    folder = tmp / ("%s-%s" % (name, verbosity))
    folder.mkdir()
    (folder / "play.yml").write_text(ROLE_PLAY.format(role=role))
    return run_playbook("play.yml", "-i", "localhost,", "-e", json.dumps(extra), *VERBOSITY[verbosity],
                        cwd=folder, env=environment(**SECRETS))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("input-errors")
    jobs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for verbosity in VERBOSITY:
            for case in SITE_CASES:
                jobs[("site", case[0], verbosity)] = pool.submit(_site, case, verbosity, tmp)
            for case in ROLE_CASES:
                jobs[("role", case[0], verbosity)] = pool.submit(_role, case, verbosity, tmp)
        return {key: job.result() for key, job in jobs.items()}


def leaked(out):
    return [piece for piece in PIECES if piece in out]


def assert_refused_naming_without_a_secret(rc, out, wanted_words):
    """The run failed, its message holds each of wanted_words, and no piece of a secret is in it."""
    flat = " ".join(out.split()).replace("''", "'")
    assert rc != 0, out[-3000:]
    for words in wanted_words:
        assert words in flat, out[-3000:]
    assert leaked(out) == []


@pytest.mark.parametrize("verbosity", list(VERBOSITY))
@pytest.mark.parametrize("case", SITE_CASES, ids=[c[0] for c in SITE_CASES])
def test_site_stops_before_any_change_naming_the_variable_without_a_secret(outcomes, case, verbosity):
    rc, out, changed = outcomes[("site", case[0], verbosity)]
    assert_refused_naming_without_a_secret(rc, out, case[3])
    assert changed and set(changed.values()) == {0}, out[-3000:]
    # The first play stopped the run: no later play's task ran on any host.
    assert "TASK [postgresql : PostgreSQL server and the client libraries Ansible uses are installed]" not in out
    assert "TASK [datadog_resources : Datadog holds" not in out


@pytest.mark.parametrize("verbosity", list(VERBOSITY))
@pytest.mark.parametrize("case", ROLE_CASES, ids=[c[0] for c in ROLE_CASES])
def test_a_role_alone_stops_on_bad_input_without_a_secret(outcomes, case, verbosity):
    rc, out, changed = outcomes[("role", case[0], verbosity)]
    assert_refused_naming_without_a_secret(rc, out, case[3])
    assert changed == {"localhost": 0}, out[-3000:]


def test_the_vvv_runs_are_verbose(outcomes):
    assert "task path:" in outcomes[("role", "traffic_seconds", "vvv")][1]
    assert "task path:" not in outcomes[("role", "traffic_seconds", "default")][1]


ASSERT_FILES = sorted(ROOT.glob("roles/*/tasks/assert.yml"))
ASSERT_MODULES = ("ansible.builtin.assert", "ansible.legacy.assert", "assert")


def assert_tasks():
    """(path, task) for each assert task of every roles/*/tasks/assert.yml, blocks included."""
    def walk(tasks):
        for task in tasks or []:
            yield task
            for key in ("block", "rescue", "always"):
                yield from walk(task.get(key))
    for path in ASSERT_FILES:
        for task in walk(yaml.safe_load(path.read_text())):
            if any(module in task for module in ASSERT_MODULES):
                yield path.relative_to(ROOT).as_posix(), task


def opening(task):
    """The fail_msg's opening words: its first four before any {{ }}, without a trailing comma or stop (the
    variable's name and what it must be)."""
    fail_msg = next(task[module] for module in ASSERT_MODULES if module in task).get("fail_msg", "")
    return " ".join(str(fail_msg).split("{{")[0].split()[:4]).rstrip(",.;:")


def test_every_assert_has_a_case_that_makes_it_fire():
    """Each assert of each role has a case above (or in test_postgresql_inputs.py) expecting its message's opening
    words, so a new assert without a case fails here. The openings are unique: one case can't stand for two
    asserts."""
    expected = [" ".join(words.split()) for case in SITE_CASES + ROLE_CASES for words in case[3]]
    expected += [" ".join(words.split()) for _, words in POSTGRESQL_CASES]
    openings = [(path, task["name"], opening(task)) for path, task in assert_tasks()]
    assert len(openings) > 30, openings  # every role's file was read
    untested = [entry for entry in openings if not any(entry[2] in words for words in expected)]
    assert untested == []
    shared = [entry for entry in openings if [o for _, _, o in openings].count(entry[2]) > 1]
    assert shared == []


def test_every_assert_message_opens_with_a_variable_name():
    """`<variable> must ...`: a fail_msg that starts with a template or a sentence has no opening to test for."""
    names = [(path, task["name"], opening(task)) for path, task in assert_tasks()]
    assert [entry for entry in names if not entry[2].split() or not entry[2].split()[0].islower()
            or not entry[2].split()[0].replace(".", "_").rstrip(",").isidentifier()] == []


def test_no_assert_is_looped():
    """One plain assert per variable: a looped assert dies with a Jinja error, not its message, when one item's
    expression can't render."""
    looped = [(path, task["name"]) for path, task in assert_tasks()
              if any(key == "loop" or key.startswith("with_") for key in task)]
    assert looped == []


KEYRING = "/usr/share/keyrings/datadog-archive-keyring.gpg"


@pytest.mark.parametrize("repo, accepted", [
    (f"deb [signed-by={KEYRING}] https://apt.datadoghq.com/ stable 7", True),
    (f"deb [arch=amd64 signed-by={KEYRING}] https://apt.datadoghq.com/ stable 7", True),
    (f"deb [signed-by={KEYRING} arch=arm64,amd64 trusted=no] https://apt.datadoghq.com/ stable 7", True),
    (f"deb [arch=amd64 signed-by={KEYRING}.bak] https://apt.datadoghq.com/ stable 7", False),
    (f"deb [arch=amd64] https://apt.datadoghq.com/ stable 7 signed-by={KEYRING}", False),
    (f"deb [signed-by={KEYRING}]", False),
], ids=["signed-by alone", "arch first", "signed-by first, more after", "another keyring", "outside the brackets",
        "no URL"])
def test_the_apt_source_may_carry_other_options_beside_signed_by(repo, accepted):
    rc, out, changed = run_playbook("site.yml", "--skip-tags", "database,agent,app,resources",
                                    "-e", json.dumps({"datadog_apt_repo": repo}), env=environment(**SECRETS))
    assert (rc == 0) == accepted, out[-3000:]
    assert ("datadog_apt_repo must be a one-line apt source" in " ".join(out.split())) != accepted
    assert leaked(out) == []
