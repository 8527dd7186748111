"""Shared helpers of the datadog_resources tests: the fake Datadog API (conftest.py makes the role's Python importable).

Not a test file (no test_ prefix): the test modules import it from this directory.
"""

import json
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "datadog_resources"

sys.path.insert(0, str(ROOT / "tests" / "doubles"))

from fake_datadog_api.app import DEFAULT_API_KEY, DEFAULT_APP_KEY, FakeDatadog  # noqa: E402
from fake_datadog_api.server import FakeDatadogServer  # noqa: E402

__all__ = ["DEFAULT_API_KEY", "DEFAULT_APP_KEY", "FakeDatadog", "FakeDatadogServer", "ROOT", "ROLE",
           "control", "start_fake"]


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
