"""The docs match the code: README's role variables are the argument_specs, every role has them."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_role_has_argument_specs():
    roles = [p for p in (REPO / "roles").iterdir() if p.is_dir()]
    assert roles
    missing = [r.name for r in roles if not (r / "meta/argument_specs.yml").is_file()]
    assert not missing


def test_readme_role_variables_match_argument_specs():
    res = subprocess.run([sys.executable, str(REPO / "tests/harness/role_docs.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
