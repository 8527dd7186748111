"""The lab's Flask app, one module: the seed's three routes and /api/db, served by gunicorn under
ddtrace-run.

gunicorn calls the factory: ``lab_app:create_app()``. Each route tags its request's root span (the
one whose resource is ``GET <route>``) so the traces show which route served them.

/api/db sums up the lab's table as JSON, through psycopg2 (which ddtrace-run traces: with
DD_DBM_PROPAGATION_MODE=full each statement carries its trace's traceparent for Database
Monitoring). libpq takes the connection from the environment (PGHOST, PGPORT, PGDATABASE, PGUSER,
PGPASSWORD...: the unit's EnvironmentFile), the table's name from LAB_DB_TABLE; without it the
route answers 503.

Logs go to stdout (the journal under systemd) with ddtrace's correlation attributes: with
DD_LOGS_INJECTION=true, ddtrace adds dd.trace_id, dd.span_id, dd.service, dd.env and dd.version to
every record; LOG_FORMAT prints them so the agent can link a log line to its trace. Without
ddtrace the same format prints empty values instead of failing.
"""

import logging
import os
import sys
from contextlib import closing

import psycopg2
from ddtrace.trace import tracer
from flask import Flask, jsonify
from psycopg2 import sql

LOG_FORMAT = (
    "%(levelname)s [%(name)s] [dd.service=%(dd.service)s dd.env=%(dd.env)s "
    "dd.version=%(dd.version)s dd.trace_id=%(dd.trace_id)s dd.span_id=%(dd.span_id)s] %(message)s"
)
DD_ATTRIBUTES = {"dd.service": "", "dd.env": "", "dd.version": "", "dd.trace_id": "0", "dd.span_id": "0"}


class CorrelationDefaults(logging.Filter):
    """Give records that ddtrace did not touch empty correlation attributes."""

    def filter(self, record):
        for name, value in DD_ATTRIBUTES.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def make_handler(stream=None):
    """A stream handler (stdout by default) that prints records in LOG_FORMAT."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(CorrelationDefaults())
    handler.set_name("lab_app")
    return handler


def configure_logging(level=logging.INFO):
    """Send the root logger to stdout once, however many apps are created."""
    root = logging.getLogger()
    if not any(h.get_name() == "lab_app" for h in root.handlers):
        root.addHandler(make_handler())
    root.setLevel(level)


log = logging.getLogger(__name__)

# route -> (view name, root span tag, body)
ROUTES = {
    "/": ("api_entry", "from_entry_route", "Entrypoint to the Application"),
    "/api/apm": ("apm_endpoint", "from_apm_route", "Getting APM Started"),
    "/api/trace": ("trace_endpoint", "from_trace_route", "Posting Traces"),
}

# The database's route (path, view name, root span tag), and where it finds the table's name.
DB_ROUTE = ("/api/db", "db_endpoint", "from_db_route")
DB_TABLE_VARIABLE = "LAB_DB_TABLE"
# libpq reads these from the environment by itself; named in the DSN as well, they tag the query spans
# (ddtrace reads the connection's DSN: out.host, network.destination.port, db.name, db.user,
# db.application). The password stays in libpq's PGPASSWORD, out of the DSN.
DSN_FROM_ENVIRONMENT = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
                        "application_name": "PGAPPNAME"}


def tag_request_span(tag):
    """Set ``tag=true`` on the request's span.

    In a Flask view ``tracer.current_span()`` is the innermost span (the view function's own);
    the request span, resource ``GET <route>``, is the trace's root. Without ddtrace-run there
    is no span and nothing to tag.
    """
    span = tracer.current_root_span()
    if span is not None:
        span.set_tag(tag, "true")


def _make_view(path, tag, body):
    def view():
        tag_request_span(tag)
        log.info("%s answered", path)
        return body

    return view


def connection_parameters():
    """The DSN's parameters, from the environment (see DSN_FROM_ENVIRONMENT)."""
    return {key: os.environ[name] for key, name in DSN_FROM_ENVIRONMENT.items() if os.environ.get(name)}


def table_summary(table):
    """Rows, max(num1) and avg(num3) of TABLE, over a connection libpq sets up from the environment."""
    query = sql.SQL("SELECT count(*), max(num1), avg(num3) FROM {}").format(sql.Identifier(table))
    with closing(psycopg2.connect(**connection_parameters())) as conn:
        conn.autocommit = True  # one read: no transaction to begin and roll back around it
        with conn.cursor() as cur:
            cur.execute(query)
            rows, max_num1, avg_num3 = cur.fetchone()
    return {"table": table, "rows": rows, "max_num1": max_num1,
            "avg_num3": None if avg_num3 is None else round(avg_num3, 3)}


def db_view():
    path, _, tag = DB_ROUTE
    tag_request_span(tag)
    table = os.environ.get(DB_TABLE_VARIABLE)
    if not table:
        log.warning("%s: no database configured (%s is not set)", path, DB_TABLE_VARIABLE)
        return jsonify(error="no database configured"), 503
    try:
        summary = table_summary(table)
    except psycopg2.Error as err:
        log.error("%s: %s", path, str(err).strip())
        return jsonify(error="database unavailable"), 503
    log.info("%s answered", path)
    return jsonify(summary)


def create_app():
    """The WSGI application, with logging to stdout in the trace-correlated format."""
    configure_logging()
    app = Flask(__name__)
    for path, (name, tag, body) in ROUTES.items():
        app.add_url_rule(path, endpoint=name, view_func=_make_view(path, tag, body))
    app.add_url_rule(DB_ROUTE[0], endpoint=DB_ROUTE[1], view_func=db_view)
    return app
