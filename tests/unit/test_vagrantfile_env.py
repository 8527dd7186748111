""".env, which the Vagrantfile reads beside it (vagrant/dotenv.rb): KEY=VALUE lines, # comments,
optional quotes, the process environment winning; a malformed line named by its number and never by
its value; .env.example listing every setting the Vagrantfile reads. Run with Debian's ruby (which
Vagrant brings) and, for the Vagrantfile itself, `vagrant` (make host-tools)."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOTENV = ROOT / "vagrant" / "dotenv.rb"
# A value that must never be printed, in any message.
SECRET = "s3cr3t-" + "9f8e7d6c5b" * 3


def lab_settings():
    """The names the Vagrantfile lets .env set (its LAB_SETTINGS list)."""
    text = (ROOT / "Vagrantfile").read_text()
    return re.search(r"LAB_SETTINGS = %w\[([^\]]*)\]", text).group(1).split()


def ruby(script, *args, env=None):
    return subprocess.run(["ruby", "-rjson", "-r" + str(DOTENV), "-e", script, "--", *map(str, args)],
                          capture_output=True, text=True, timeout=30, env=env)


def parse(tmp_path, text, allowed=None):
    """LabDotenv.parse of TEXT: (settings or None, error message or None)."""
    path = tmp_path / "lab.env"
    path.write_text(text)
    res = ruby("""
      begin
        allowed = ARGV[1] == "" ? nil : ARGV[1].split(",")
        puts JSON.generate({ "settings" => LabDotenv.parse(ARGV[0], allowed: allowed) })
      rescue LabDotenv::Error => e
        puts JSON.generate({ "error" => e.message })
      end""", path, ",".join(allowed or []))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    return out.get("settings"), out.get("error")


def test_settings_comments_quotes_and_export_are_read(tmp_path):
    settings, error = parse(tmp_path, "\n".join([
        "\ufeff# the lab",
        "",
        "DD_API_KEY=abc123",
        "  DD_APP_KEY = 'single # quoted'  ",
        'DD_SITE="datadoghq.eu"  # the EU site',
        "export LAB_CPUS=4",
        "LAB_IP=none # no private network",
        "LAB_BOX=a#b",
        "LAB_ANSIBLE_VERBOSE=",
        '   # indented comment',
        "LAB_MEMORY=\"$HOME\"",
    ]) + "\n")
    assert error is None
    assert settings == {"DD_API_KEY": "abc123", "DD_APP_KEY": "single # quoted", "DD_SITE": "datadoghq.eu",
                        "LAB_CPUS": "4", "LAB_IP": "none", "LAB_BOX": "a#b", "LAB_ANSIBLE_VERBOSE": "",
                        # taken literally: nothing is expanded
                        "LAB_MEMORY": "$HOME"}


@pytest.mark.parametrize("lines, line, reason", [
    (["DD_SITE=datadoghq.com", f"DD_API_KEY {SECRET}"], 2, "not a KEY=VALUE setting"),
    ([f"{SECRET}"], 1, "not a KEY=VALUE setting"),
    (["", f"DD_API_KEY='{SECRET}"], 2, "a quote is not closed"),
    ([f'DD_API_KEY="{SECRET}" trailing'], 1, "text follows the closing quote"),
    ([f"DD_APY_KEY={SECRET}"], 1, "not a setting the lab reads"),
    ([f"DD_API_KEY={SECRET}", "# again", f"DD_API_KEY={SECRET}x"], 3, "sets again what line 1 set"),
    ([f"9D_API_KEY={SECRET}"], 1, "not a KEY=VALUE setting"),
])
def test_a_malformed_line_is_named_by_its_number_never_by_its_value(tmp_path, lines, line, reason):
    settings, error = parse(tmp_path, "\n".join(lines) + "\n", allowed=lab_settings())
    assert settings is None
    assert f"lab.env, line {line}: " in error and reason in error, error
    assert SECRET not in error and "9D_API" not in error and "APY" not in error, error


def test_a_name_the_lab_does_not_read_is_refused_with_the_names_it_reads(tmp_path):
    _, error = parse(tmp_path, "LAB_CPU=4\n", allowed=lab_settings())
    assert "line 1: not a setting the lab reads (it reads DD_API_KEY, DD_APP_KEY, DD_SITE, LAB_BOX" in error


def test_the_environment_wins_over_the_file_even_when_empty_and_no_file_is_no_setting(tmp_path):
    path = tmp_path / "lab.env"
    path.write_text("DD_API_KEY=from-file\nDD_APP_KEY=from-file\nDD_SITE=from-file\n")
    script = """
      env = { "DD_APP_KEY" => "from-env", "DD_SITE" => "" }
      set = LabDotenv.load(ARGV[0], env: env)
      missing = LabDotenv.load(ARGV[0] + ".absent", env: env)
      puts JSON.generate({ "env" => env, "set" => set, "missing" => missing })"""
    res = ruby(script, path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["env"] == {"DD_API_KEY": "from-file", "DD_APP_KEY": "from-env", "DD_SITE": ""}
    # It says which names it set, never their values.
    assert out["set"] == ["DD_API_KEY"]
    assert out["missing"] == []


def test_env_example_lists_every_setting_commented_and_parses_when_uncommented(tmp_path):
    text = (ROOT / ".env.example").read_text()
    settings, error = parse(tmp_path, text, allowed=lab_settings())
    assert error is None and settings == {}, "every setting in .env.example is commented out"
    uncommented = "\n".join(re.sub(r"^# ([A-Z_]+=)", r"\1", line) for line in text.splitlines())
    settings, error = parse(tmp_path, uncommented, allowed=lab_settings())
    assert error is None, error
    assert sorted(settings) == sorted(lab_settings())


def test_every_setting_is_documented_in_the_vagrantfile_header():
    header = (ROOT / "Vagrantfile").read_text().split("\nrequire ", 1)[0]
    assert [name for name in lab_settings() if not re.search(rf"^#\s+{name}\s", header, re.M)] == []


def test_env_is_ignored_by_git_and_the_example_is_not():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, timeout=30)
    example = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT, timeout=30)
    assert (ignored.returncode, example.returncode) == (0, 1)


def vagrant(tmp_path, *args, **env):
    """`vagrant ARGS` on the repo's Vagrantfile, with state under TMP_PATH and no key in the environment."""
    base = {k: v for k, v in os.environ.items() if k not in ("DD_API_KEY", "DD_APP_KEY", "DD_SITE")}
    # Box lookups, if a command ever got that far, go to a closed port on loopback.
    base.update(VAGRANT_HOME=str(tmp_path / "vagrant.d"), VAGRANT_DOTFILE_PATH=str(tmp_path / "dot-vagrant"),
                VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_SERVER_URL="http://127.0.0.1:9",
                **{"VAGRANT_DEFAULT_PROVIDER": "libvirt", "LAB_ANSIBLE_PLAYBOOK": "/bin/true", **env})
    return subprocess.run(["vagrant", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=base)


def test_the_vagrantfile_takes_the_api_key_from_the_env_file(tmp_path):
    env_file = tmp_path / "lab.env"
    env_file.write_text(f'DD_API_KEY="{SECRET}"\n')
    without = vagrant(tmp_path, "provision", LAB_ENV_FILE="none")
    assert "DD_API_KEY is not set" in without.stdout + without.stderr
    with_file = vagrant(tmp_path, "provision", LAB_ENV_FILE=str(env_file))
    out = with_file.stdout + with_file.stderr
    # Past the key check, it stops at the machine that doesn't exist yet.
    assert "DD_API_KEY is not set" not in out and "vagrant up" in out, out
    assert SECRET not in out


def test_the_vagrantfile_stops_on_a_malformed_env_file_naming_the_line_only(tmp_path):
    env_file = tmp_path / "lab.env"
    env_file.write_text(f"DD_SITE=datadoghq.com\nDD_API_KEY {SECRET}\n")
    res = vagrant(tmp_path, "validate", LAB_ENV_FILE=str(env_file))
    assert res.returncode != 0
    assert f"lab: {env_file}, line 2: not a KEY=VALUE setting" in res.stderr, res.stderr
    assert SECRET not in res.stdout + res.stderr


PROVISIONING_RB = ROOT / "vagrant" / "provisioning.rb"


@pytest.mark.parametrize("argv, provisioned, expected", [
    # A machine provisioned before: only what the command names runs (the bug: these ran nothing's checks).
    ("up --provision-with traffic", True, ["traffic"]),
    ("reload --provision-with traffic", True, ["traffic"]),
    ("--debug reload --provision-with=traffic,verify", True, ["traffic", "verify"]),
    ("resume --provision-with verify", True, ["verify"]),
    ("provision --provision-with traffic", True, ["traffic"]),
    ("provision", True, ["lab"]),
    ("up --provision", True, ["lab"]),
    ("up", True, []),
    ("reload", True, []),
    ("resume", True, []),
    ("up --no-provision --provision-with traffic", True, []),
    # A machine never provisioned: up and reload run lab.
    ("up", False, ["lab"]),
    ("reload", False, ["lab"]),
    ("up --provision-with verify", False, ["verify"]),
    ("status", False, []),
    ("ssh -c provision", True, []),
])
def test_the_provisioners_a_command_runs_are_read_from_its_arguments(argv, provisioned, expected):
    res = subprocess.run(["ruby", "-rjson", "-r" + str(PROVISIONING_RB), "-e",
                          "puts JSON.generate(LabProvisioning.to_run(ARGV[1..], provisioned: ARGV[0] == 'yes'))",
                          "--", "yes" if provisioned else "no", *argv.split()],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == expected


PROVISIONING = [
    ["up", "--provision-with", "traffic"],
    ["reload", "--provision-with", "traffic"],
    ["reload", "--provision-with=traffic,verify"],
    ["resume", "--provision-with", "traffic"],
    ["provision", "--provision-with", "traffic"],
    ["up", "--provision"],
]


@pytest.mark.parametrize("command", PROVISIONING, ids=[" ".join(c) for c in PROVISIONING])
def test_every_command_that_runs_a_provisioner_checks_the_key_and_readies_the_controller(tmp_path, command):
    """Through vagrant itself: a command that runs provisioners stops without DD_API_KEY, and with it builds the
    controller's Ansible first (here its build fails on purpose, with a Python that doesn't exist, which shows that
    it was asked for), before the machine is touched. (Vagrant drops the provisioned mark of a machine that doesn't
    exist, so the provisioned machine's cases are the ruby-level test's above.)"""
    without = vagrant(tmp_path, *command, LAB_ENV_FILE="none")
    assert without.returncode != 0
    assert "DD_API_KEY is not set" in without.stdout + without.stderr, without.stdout + without.stderr
    with_key = vagrant(tmp_path, *command, LAB_ENV_FILE="none", DD_API_KEY=SECRET, DD_APP_KEY=SECRET,
                       LAB_ANSIBLE_PLAYBOOK="", LAB_CONTROLLER_PYTHON=str(tmp_path / "no-such-python3"))
    out = with_key.stdout + with_key.stderr
    assert with_key.returncode != 0
    assert "The lab's controller venv could not be built" in out, out
    assert SECRET not in out


def test_a_command_that_provisions_nothing_needs_no_key(tmp_path):
    for command in (["reload", "--no-provision"], ["resume"], ["up", "--no-provision", "--provision-with", "lab"]):
        res = vagrant(tmp_path, *command, LAB_ENV_FILE="none")
        assert "DD_API_KEY is not set" not in res.stdout + res.stderr, (command, res.stdout + res.stderr)


def test_verify_needs_the_application_key_and_lab_only_says_what_it_skips(tmp_path):
    verify = vagrant(tmp_path, "provision", "--provision-with", "verify", LAB_ENV_FILE="none", DD_API_KEY=SECRET)
    assert "DD_APP_KEY is not set. The verify provisioner" in verify.stdout + verify.stderr, verify.stdout + verify.stderr
    lab = vagrant(tmp_path, "provision", LAB_ENV_FILE="none", DD_API_KEY=SECRET)
    out = lab.stdout + lab.stderr
    assert "DD_APP_KEY is not set: the machine is provisioned" in out and "DD_APP_KEY is not set." not in out, out
    assert SECRET not in out + verify.stdout + verify.stderr


STANDIN_DOCKER = """#!/bin/sh
# A stand-in for the docker CLI: the engine's storage as DRIVER_STATUS says, every call recorded.
echo "$*" >> "$CALLS"
case "$1" in
  version) echo "Docker version 26.1.0 (stand-in)"; exit 0 ;;
  info) echo "$DRIVER_STATUS"; exit 0 ;;
  ps) exit 0 ;;
esac
echo "stand-in docker: $1 is not served here" >&2
exit 1
"""


@pytest.mark.parametrize("driver_status, stops", [
    ('[["driver-type","io.containerd.snapshotter.v1"]]', True),
    ('[["Backing Filesystem","extfs"],["Supports d_type","true"]]', False),
], ids=["containerd image store", "classic store"])
def test_an_old_vagrant_meeting_the_containerd_image_store_stops_with_the_version_it_needs(tmp_path, driver_status,
                                                                                          stops):
    """This machine's Vagrant (2.3.4) can't read a containerd-store engine's build output: `vagrant up
    --provider=docker` stops before the build and names Vagrant 2.4.2; on the classic store it goes on to build."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STANDIN_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    calls = tmp_path / "calls"
    res = vagrant(tmp_path, "up", "--provider=docker", LAB_ENV_FILE="none", DD_API_KEY=SECRET,
                  VAGRANT_DEFAULT_PROVIDER="docker", PATH=f"{bin_dir}:{os.environ['PATH']}", CALLS=str(calls),
                  DRIVER_STATUS=driver_status)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    made = calls.read_text().splitlines() if calls.exists() else []
    if stops:
        assert "Install Vagrant 2.4.2 or later" in " ".join(out.split()), out
        assert not any(c.startswith("build") for c in made), made
    else:
        assert "Install Vagrant 2.4.2" not in " ".join(out.split()), out
        assert any(c.startswith("build") for c in made), (made, out[-2000:])
    assert SECRET not in out
