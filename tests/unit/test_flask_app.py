"""The lab's Flask app (roles/flask_app/files/lab_app.py): bodies, root-span tags, log correlation, and
/api/db's answers (against a stand-in connection: the flask_app scenario runs it against PostgreSQL).

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

import lab_app  # noqa: E402
import psycopg2  # noqa: E402
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


class FakeConnection:
    """What /api/db uses of a psycopg2 connection: autocommit, a cursor as a context manager, close()."""

    def __init__(self, row):
        self.row, self.queries, self.autocommit, self.closed = row, [], False, False

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, query):
        self.queries.append(query)

    def fetchone(self):
        return self.row

    def close(self):
        self.closed = True


def test_db_route_sums_up_the_table_as_json_and_tags_its_root_span(client, captured, monkeypatch):
    connection, connected = FakeConnection((1000, 10, 71.23456)), []
    environment = {"PGHOST": "127.0.0.1", "PGPORT": "5433", "PGDATABASE": "db", "PGUSER": "reader",
                   "PGAPPNAME": "app", "PGPASSWORD": "s3cret", "LAB_DB_TABLE": "large_test"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lab_app.psycopg2, "connect", lambda *a, **k: connected.append((a, k)) or connection)
    response, root, _ = request_trace(client, captured, "/api/db")
    assert response.status_code == 200
    assert response.get_json() == {"table": "large_test", "rows": 1000, "max_num1": 10, "avg_num3": 71.235}
    assert root.resource == "GET /api/db"
    assert root.get_tag("from_db_route") == "true"
    assert all(root.get_tag(t) is None for t in ALL_TAGS)
    # One read, the table quoted as an identifier, outside a transaction, and the connection closed.
    (query,) = connection.queries
    assert isinstance(query, psycopg2.sql.Composed)
    assert psycopg2.sql.Identifier("large_test") in query.seq
    assert connection.autocommit and connection.closed
    # Named in the DSN, so that ddtrace tags the query span with them; the password is left to libpq.
    assert connected == [((), {"host": "127.0.0.1", "port": "5433", "dbname": "db", "user": "reader",
                               "application_name": "app"})]


def test_db_route_of_an_empty_table_answers_nulls(client, monkeypatch):
    monkeypatch.setenv("LAB_DB_TABLE", "large_test")
    monkeypatch.setattr(lab_app.psycopg2, "connect", lambda *a, **k: FakeConnection((0, None, None)))
    with client.get("/api/db") as response:
        assert response.get_json() == {"table": "large_test", "rows": 0, "max_num1": None, "avg_num3": None}


def test_db_route_without_a_database_answers_503(client, captured, monkeypatch):
    monkeypatch.delenv("LAB_DB_TABLE", raising=False)
    response, root, _ = request_trace(client, captured, "/api/db")
    assert response.status_code == 503
    assert response.get_json() == {"error": "no database configured"}
    assert root.get_tag("from_db_route") == "true"


def test_db_route_answers_503_and_logs_why_when_the_database_refuses(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise psycopg2.OperationalError('FATAL:  password authentication failed for user "reader"\n')

    monkeypatch.setenv("LAB_DB_TABLE", "large_test")
    monkeypatch.setattr(lab_app.psycopg2, "connect", refuse)
    stream = io.StringIO()
    handler = make_handler(stream)
    logging.getLogger("lab_app").addHandler(handler)
    try:
        with client.get("/api/db") as response:
            pass
    finally:
        logging.getLogger("lab_app").removeHandler(handler)
    assert response.status_code == 503
    assert response.get_json() == {"error": "database unavailable"}
    assert 'ERROR [lab_app] ' in stream.getvalue()
    assert '/api/db: FATAL:  password authentication failed for user "reader"' in stream.getvalue()
