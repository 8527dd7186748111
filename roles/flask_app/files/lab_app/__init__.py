"""The lab's Flask app: the seed's three routes, served by gunicorn under ddtrace-run.

Each route tags its request's root span (the one whose resource is ``GET <route>``) so the
traces show which route served them; logs carry the trace and span ids (DD_LOGS_INJECTION).
"""

from lab_app.app import create_app

__all__ = ["create_app"]
