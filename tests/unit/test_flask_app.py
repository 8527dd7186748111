"""The lab's Flask app (roles/flask_app/files/lab_app.py): bodies, root-span tags, log correlation.

ddtrace instruments Flask here as ddtrace-run does on the host; a trace filter keeps every
finished trace in memory and drops it, so nothing is sent to an agent.
"""

import io
import logging
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
os.environ["DD_LOGS_INJECTION"] = "true"
sys.dont_write_bytecode = True  # keep __pycache__ out of the role's files/
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "flask_app" / "files"))

from ddtrace import patch  # noqa: E402
from ddtrace.trace import TraceFilter, tracer  # noqa: E402

patch(flask=True, logging=True)

from lab_app import create_app, make_handler  # noqa: E402

ROUTES = {
    "/": ("Entrypoint to the Application", "from_entry_route"),
    "/api/apm": ("Getting APM Started", "from_apm_route"),
    "/api/trace": ("Posting Traces", "from_trace_route"),
}
ALL_TAGS = {tag for _, tag in ROUTES.values()}


class Captured(TraceFilter):
    """Keeps finished traces, sends none."""

    def __init__(self):
        self.traces = []

    def process_trace(self, trace):
        self.traces.append(trace)
        return None


@pytest.fixture(scope="module")
def captured():
    capture = Captured()
    tracer.configure(trace_processors=[capture])
    yield capture
    tracer.configure(trace_processors=[])


@pytest.fixture()
def client(captured):
    captured.traces.clear()
    return create_app().test_client()


def request_trace(client, captured, path):
    """GET path; return the response and the one trace it produced, root span first."""
    response = client.get(path)
    response.close()  # ddtrace finishes the request's spans when the WSGI body is closed
    assert len(captured.traces) == 1, f"expected one trace for {path}, got {captured.traces}"
    spans = captured.traces[0]
    roots = [s for s in spans if s.parent_id is None or s.parent_id == 0]
    assert len(roots) == 1, f"expected one root span, got {spans}"
    return response, roots[0], [s for s in spans if s is not roots[0]]


@pytest.mark.parametrize("path", ROUTES)
def test_route_answers_its_body(client, path):
    with client.get(path) as response:
        pass
    assert response.status_code == 200
    assert response.get_data(as_text=True) == ROUTES[path][0]


@pytest.mark.parametrize("path", ROUTES)
def test_route_tags_its_request_root_span(client, captured, path):
    _, root, children = request_trace(client, captured, path)
    body, tag = ROUTES[path]
    assert root.name == "flask.request"
    assert root.resource == f"GET {path}"
    assert root.get_tag(tag) == "true"
    for other in ALL_TAGS - {tag}:
        assert root.get_tag(other) is None, f"{path} set {other}"
    # The view function's own span (what tracer.current_span() returns in a view) is not tagged.
    assert children, "the Flask integration made no child spans"
    for span in children:
        assert all(span.get_tag(t) is None for t in ALL_TAGS), f"{span.name} carries a route tag"


def test_unknown_route_is_404_and_untagged(client, captured):
    response, root, _ = request_trace(client, captured, "/nope")
    assert response.status_code == 404
    assert all(root.get_tag(t) is None for t in ALL_TAGS)


@pytest.mark.parametrize("path", ROUTES)
def test_request_log_line_carries_its_trace_id(client, captured, path):
    stream = io.StringIO()
    handler = make_handler(stream)
    logging.getLogger("lab_app").addHandler(handler)
    try:
        _, root, _ = request_trace(client, captured, path)
    finally:
        logging.getLogger("lab_app").removeHandler(handler)
    lines = [line for line in stream.getvalue().splitlines() if f"{path} answered" in line]
    assert len(lines) == 1, stream.getvalue()
    trace_id = f"{root.trace_id:032x}" if root.trace_id >= 2**64 else str(root.trace_id)
    assert f"dd.trace_id={trace_id} " in lines[0]


def test_log_format_without_ddtrace_attributes_prints_zero_ids():
    stream = io.StringIO()
    record = logging.LogRecord("lab_app", logging.INFO, __file__, 1, "plain", None, None)
    handler = make_handler(stream)
    handler.handle(record)
    assert stream.getvalue() == ("INFO [lab_app] [dd.service= dd.env= dd.version= dd.trace_id=0 dd.span_id=0] plain\n")
