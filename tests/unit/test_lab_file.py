"""The lab_file module (roles/lab_probe), run as Ansible runs a module: it writes a file only when its
content differs, sets owner, group and mode, reports honestly in check mode and shows the diff."""
import hashlib
import os

from lab_ansible import run_module


def lab_file(tmp_path, check_mode=False, **params):
    return run_module("roles/lab_probe/library/lab_file.py", tmp_path, check_mode, **params)


def test_a_new_file_gets_its_content_and_mode_and_a_second_run_changes_nothing(tmp_path):
    conf = tmp_path / "conf.d" / "lab.conf"
    conf.parent.mkdir()
    result = lab_file(tmp_path, path=str(conf), content="port = 5432\n", mode="0640", owner="root", group="root")
    assert result["changed"] is True
    assert result["checksum"] == hashlib.sha1(b"port = 5432\n").hexdigest()
    assert conf.read_text() == "port = 5432\n"
    assert conf.stat().st_mode & 0o7777 == 0o640
    assert [p.name for p in conf.parent.iterdir()] == ["lab.conf"], "a temporary file is left"
    assert result["diff"] == {"before_header": str(conf), "after_header": str(conf), "before": "",
                              "after": "port = 5432\n"}
    again = lab_file(tmp_path, path=str(conf), content="port = 5432\n", mode="0640", owner="root", group="root")
    assert again["changed"] is False and "diff" not in again


def test_changed_content_keeps_the_files_mode_unless_one_is_given(tmp_path):
    conf = tmp_path / "lab.conf"
    conf.write_text("port = 5432\n")
    conf.chmod(0o600)
    inode = conf.stat().st_ino
    result = lab_file(tmp_path, path=str(conf), content="port = 5433\n")
    assert result["changed"] is True
    assert result["diff"]["before"] == "port = 5432\n" and result["diff"]["after"] == "port = 5433\n"
    assert conf.read_text() == "port = 5433\n"
    assert conf.stat().st_mode & 0o7777 == 0o600
    assert conf.stat().st_ino != inode, "not replaced by a rename"


def test_a_mode_that_differs_alone_is_a_change(tmp_path):
    conf = tmp_path / "lab.conf"
    conf.write_text("x\n")
    conf.chmod(0o644)
    assert lab_file(tmp_path, path=str(conf), content="x\n", mode="0640")["changed"] is True
    assert conf.stat().st_mode & 0o7777 == 0o640


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path):
    conf = tmp_path / "lab.conf"
    conf.write_text("port = 5432\n")
    conf.chmod(0o644)
    assert lab_file(tmp_path, check_mode=True, path=str(conf), content="port = 5433\n")["changed"] is True
    assert lab_file(tmp_path, check_mode=True, path=str(conf), content="port = 5432\n", mode="0600")["changed"] is True
    assert conf.read_text() == "port = 5432\n" and conf.stat().st_mode & 0o7777 == 0o644
    # The directory an earlier task would create, in a check-mode run on a fresh host.
    missing = tmp_path / "not-yet" / "lab.conf"
    assert lab_file(tmp_path, check_mode=True, path=str(missing), content="x\n")["changed"] is True
    assert not missing.parent.exists()


def test_a_missing_directory_or_a_directory_at_the_path_fails_with_the_path_named(tmp_path):
    missing = tmp_path / "not-yet" / "lab.conf"
    result = lab_file(tmp_path, path=str(missing), content="x\n")
    assert result["failed"] and result["msg"] == "the directory of %s does not exist" % missing
    result = lab_file(tmp_path, path=str(tmp_path), content="x\n")
    assert result["failed"] and result["msg"] == "%s is a directory, not a file" % tmp_path
    assert os.listdir(tmp_path) == ["args.json"]


def test_files_put_a_roles_directories_and_files_in_order_and_remove_what_is_absent(tmp_path):
    old = tmp_path / "app" / "old_package"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("")
    files = [{"path": str(tmp_path / "app" / "code"), "state": "directory", "mode": "0750"},
             {"path": str(tmp_path / "app" / "code" / "app.py"), "content": "print(1)\n", "mode": "0644"},
             {"path": str(old), "state": "absent"}]
    result = lab_file(tmp_path, check_mode=True, files=files)
    assert result["changed"] is True and result["changed_paths"] == [f["path"] for f in files]
    assert old.exists() and not (tmp_path / "app" / "code").exists(), "check mode changed something"
    result = lab_file(tmp_path, files=files)
    assert result["changed_paths"] == [f["path"] for f in files]
    assert (tmp_path / "app" / "code").stat().st_mode & 0o7777 == 0o750
    assert (tmp_path / "app" / "code" / "app.py").read_text() == "print(1)\n"
    assert not old.exists()
    assert result["diff"] == [{"before_header": files[1]["path"], "after_header": files[1]["path"], "before": "",
                               "after": "print(1)\n"}]
    again = lab_file(tmp_path, files=files)
    assert again["changed"] is False and again["changed_paths"] == [] and "diff" not in again
    files[0]["mode"] = "0755"
    assert lab_file(tmp_path, files=files)["changed_paths"] == [files[0]["path"]]


def test_a_files_entry_without_content_or_on_a_file_fails_with_its_path_named(tmp_path):
    target = tmp_path / "lab.conf"
    first = tmp_path / "first.conf"
    result = lab_file(tmp_path, files=[{"path": str(first), "content": "x\n"}, {"path": str(target)}])
    assert result["failed"] and result["msg"] == "files: %s needs a content, or a state of directory or absent" % target
    assert not first.exists(), "an entry before the bad one was written"
    target.write_text("x\n")
    result = lab_file(tmp_path, files=[{"path": str(target), "state": "directory"}])
    assert result["failed"] and result["msg"] == "%s exists and is not a directory" % target
    result = lab_file(tmp_path, files=[{"path": str(tmp_path / "a" / "b"), "state": "directory"}])
    assert result["failed"] and result["msg"] == "the directory of %s does not exist" % (tmp_path / "a" / "b")
    assert lab_file(tmp_path, path=str(target), files=[])["failed"]
