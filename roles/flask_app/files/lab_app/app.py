"""The seed's app, fixed: three routes, each tagging the request's root span."""

import logging

from ddtrace.trace import tracer
from flask import Flask

from lab_app.logs import configure_logging

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
