"""Bad input to any role stops the run before any change, names the variable, and prints no secret.

Every kind of input check of every role is triggered: an argument_specs choice, type and required
argument, and each role's asserts. The keys and the database password are long distinctive strings;
the whole output, at default verbosity and at -vvv, must hold none of them (nor a piece of them).
site.yml checks all its roles' input in its first play, which never connects to a host, so these
runs need no host; the traffic role (not in site.yml) and the required arguments are driven through
a one-role playbook on localhost, whose first tasks are the checks.
"""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from lab_ansible import environment, run_playbook

API_KEY = "apikey-" + "5d1e9b7c3a" * 3
APP_KEY = "appkey-" + "c4a8e2f6b0" * 4
DB_PASSWORD = "dbpass-" + "9e7c5a3b1d" * 2
PIECES = (API_KEY, APP_KEY, DB_PASSWORD, "5d1e9b7c3a", "c4a8e2f6b0", "9e7c5a3b1d")
SECRETS = {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY, "LAB_DATADOG_DB_PASSWORD": DB_PASSWORD}

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
    ("app_port", {}, {"flask_app_port": 0}, ["flask_app_port must be a TCP port"]),
    ("app_workers_type", {}, {"flask_app_workers": "many"}, ["flask_app_workers", "int"]),
    ("app_env_quote", {}, {"flask_app_dd_version": "1 0"}, ["must not contain quotes"]),
    ("resources_state", {}, {"datadog_resources_state": "bogus"},
     ["value of datadog_resources_state must be one of: present, absent"]),
    ("resources_app_key_unset", {"DD_APP_KEY": ""}, {}, ["datadog_resources_app_key must be set", "DD_APP_KEY"]),
    ("resources_retry", {}, {"datadog_resources_retry_timeout": 0}, ["datadog_resources_retry_timeout must be"]),
    ("resources_warning", {}, {"datadog_resources_my_metric_warning": 900},
     ["datadog_resources_my_metric_warning must be below"]),
    ("resources_url", {}, {"datadog_api_url": "ftp://x"}, ["datadog_resources_api_url", "must be the API's base URL"]),
]
ROLE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles: [{role}]
"""
ROLE_CASES = [
    ("traffic_seconds", "traffic", {"traffic_max_seconds": 0}, ["traffic_max_seconds must be 1-3600"]),
    ("traffic_type", "traffic", {"traffic_bursts": "lots"}, ["traffic_bursts", "int"]),
    ("traffic_url", "traffic", {"traffic_app_url": "localhost:5002"}, ["traffic_app_url must be an http(s) URL"]),
    ("pg_required", "postgresql", {}, ["missing required arguments: postgresql_monitoring_password"]),
    ("resources_required", "datadog_resources", {}, ["missing required arguments", "datadog_resources_host"]),
    ("agent_key_unset_role", "datadog", {"datadog_api_key": ""}, ["datadog_api_key must be set"]),
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
