"""Every platform the postgresql role knows (its vars/<Distribution>-<major>.yml) gets an app venv that installs:
flask_app picks its vars file as its tasks/variables.yml does (first_found: <Distribution>-<major>.yml,
<Distribution>.yml, default.yml), and that file's pinned requirements resolve, from PyPI's wheels, for the
platform's python3 and its glibc. (pip resolves them as a current pip would; the venv's own pip is upgraded
first where it is too old to read the wheels' tags: __flask_app_pip.)
"""
import json
import subprocess
import sys

import pytest
import yaml
from lab_ansible import ROOT

# Each release's python3 (Ubuntu 18.04's: the python3.8 package the role installs) and glibc, from the
# distributions' own package lists. A release missing here fails the test: add what its python3 and glibc are.
PLATFORMS = {
    "Debian-11": ("3.9", 31), "Debian-12": ("3.11", 36), "Debian-13": ("3.13", 41),
    "Ubuntu-18": ("3.8", 27), "Ubuntu-20": ("3.8", 31), "Ubuntu-22": ("3.10", 35), "Ubuntu-24": ("3.12", 39),
}
RELEASES = sorted(p.stem for p in (ROOT / "roles/postgresql/vars").glob("*-*.yml"))
APP_VARS = ROOT / "roles/flask_app/vars"


def app_vars(release):
    distribution = release.split("-")[0]
    for name in (f"{release}.yml", f"{distribution}.yml", "default.yml"):
        if (APP_VARS / name).is_file():
            return name, yaml.safe_load((APP_VARS / name).read_text())
    raise AssertionError("flask_app has no vars/default.yml")


def test_every_postgresql_platform_is_known_here():
    assert RELEASES and set(RELEASES) <= set(PLATFORMS), set(RELEASES) - set(PLATFORMS)


@pytest.mark.parametrize("release", RELEASES)
def test_the_apps_pins_install_on_every_postgresql_platform(release, tmp_path):
    python, glibc = PLATFORMS[release]
    name, values = app_vars(release)
    requirements = ROOT / "roles/flask_app/files" / values["__flask_app_platform_requirements"]
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(5, glibc + 1)]
    platforms += ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
    report = tmp_path / "report.json"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                          "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                          *[arg for p in platforms for arg in ("--platform", p)], "--target", str(tmp_path / "t"),
                          "--report", str(report), "-r", str(requirements)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{release} (python {python}, glibc 2.{glibc}) takes vars/{name}: " + res.stderr[-2000:]
    installed = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert "ddtrace" in installed and "flask" in installed and "gunicorn" in installed
