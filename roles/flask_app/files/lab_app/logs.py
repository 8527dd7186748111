"""Logging to stdout (the journal under systemd) with ddtrace's correlation attributes.

With DD_LOGS_INJECTION=true, ddtrace adds dd.trace_id, dd.span_id, dd.service, dd.env and
dd.version to every record; the format below prints them so the agent can link a log line to
its trace. Without ddtrace the same format prints empty values instead of failing.
"""

import logging
import sys

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
