"""Shared helpers of the datadog_resources tests: the role's Python code loaded as Ansible loads it, the fake API.

Not a test file (no test_ prefix): the test modules import it from this directory.
"""

import importlib.util
import json
import sys
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # keep __pycache__ out of the role's folders

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "datadog_resources"
MODULE_UTILS = ("schema", "definitions", "client", "sync")  # in dependency order

sys.path.insert(0, str(ROOT / "tests" / "doubles"))

from fake_datadog_api.app import DEFAULT_API_KEY, DEFAULT_APP_KEY, FakeDatadog  # noqa: E402
from fake_datadog_api.server import FakeDatadogServer  # noqa: E402

__all__ = ["DEFAULT_API_KEY", "DEFAULT_APP_KEY", "FakeDatadog", "FakeDatadogServer", "ROOT", "ROLE",
           "load_role_python", "control", "start_fake"]


def load_role_python():
    """Import the role's module_utils as ansible.module_utils.datadog_resources_*, and its modules.

    Returns a dict: short name ("schema", "definitions", "client", "sync", "apply") -> module.
    """
    loaded = {}
    for short in MODULE_UTILS:
        name = "ansible.module_utils.datadog_resources_%s" % short
        loaded[short] = sys.modules.get(name) or _load(name, ROLE / "module_utils" / ("datadog_resources_%s.py" % short))
    name = "datadog_resources_apply"
    loaded["apply"] = sys.modules.get(name) or _load(name, ROLE / "library" / ("%s.py" % name))
    return loaded


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def start_fake(**kwargs):
    """A fake Datadog API served on 127.0.0.1 (a free port) from a thread; call .stop() when done."""
    return FakeDatadogServer(FakeDatadog(**kwargs)).start_background()


def control(server, method, path, body=None):
    """Call one of the fake's /fake/ control endpoints over HTTP; returns the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")
