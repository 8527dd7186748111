"""The lab's Flask app, one module: the seed's three routes, served by gunicorn under ddtrace-run.

gunicorn calls the factory: ``lab_app:create_app()``. Each route tags its request's root span (the
one whose resource is ``GET <route>``) so the traces show which route served them.

Logs go to stdout (the journal under systemd) with ddtrace's correlation attributes: with
DD_LOGS_INJECTION=true, ddtrace adds dd.trace_id, dd.span_id, dd.service, dd.env and dd.version to
every record; LOG_FORMAT prints them so the agent can link a log line to its trace. Without
ddtrace the same format prints empty values instead of failing.
"""

import logging
import sys

from ddtrace.trace import tracer
from flask import Flask

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


def create_app():
    """The WSGI application, with logging to stdout in the trace-correlated format."""
    configure_logging()
    app = Flask(__name__)
    for path, (name, tag, body) in ROUTES.items():
        app.add_url_rule(path, endpoint=name, view_func=_make_view(path, tag, body))
    return app
