"""The docs match the code: each role's README holds its argument_specs as a table, README.md stays
short, every relative link points at a file, and the retired setting is named nowhere."""
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/harness"))
import role_docs  # noqa: E402

# Spelled in two pieces so that this file doesn't name it either. (LAB_PLAYBOOKS, the Vagrantfile's
# table of named provisioners, is another word.)
RETIRED = re.compile(rb"\b" + b"LAB_" + rb"PLAYBOOK\b")
SKIPPED = (".venv", ".build", ".git")


def roles():
    return sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())


def repo_files():
    """The repo's files as git sees them: committed, plus new ones not ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout.decode()
    for name in sorted(set(filter(None, out.split("\0")))):
        if name.split("/", 1)[0].startswith(SKIPPED):
            continue
        path = REPO / name
        if path.is_file():
            yield name, path


def markdown_files():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("roles/*/README.md"))]


def test_every_role_has_argument_specs():
    assert roles()
    missing = [r.name for r in roles() if not (r / "meta/argument_specs.yml").is_file()]
    assert not missing


def test_every_role_has_a_readme_with_the_variable_markers():
    for role in roles():
        readme = role / "README.md"
        assert readme.is_file(), f"{role.name} has no README.md"
        assert role_docs.has_markers(readme.read_text()), f"{readme} lacks the ROLE-VARIABLES markers"


def test_role_readmes_variables_match_argument_specs():
    res = subprocess.run([sys.executable, str(REPO / "tests/harness/role_docs.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_top_readme_holds_no_role_table_and_stays_short():
    text = (REPO / "README.md").read_text()
    assert role_docs.BEGIN not in text
    assert len(text.splitlines()) <= 200


def anchors(md):
    """The heading anchors GitHub makes for a Markdown file (fenced code left out)."""
    text = re.sub(r"^```.*?^```", "", md.read_text(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_relative_links_in_the_docs_point_at_files_and_headings():
    broken = []
    for md in markdown_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = md.parent / path if path else md
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
                broken.append(f"{md.relative_to(REPO)}: {target}")
    assert not broken


def test_no_file_names_the_retired_playbook_setting():
    named = [name for name, path in repo_files() if RETIRED.search(path.read_bytes())]
    assert not named, "named provisioners replaced it (vagrant provision --provision-with NAME): " + ", ".join(named)
