# -*- coding: utf-8 -*-
"""Calls to the Datadog API through datadog-api-client, retried on 429 and 5xx within a time bound.

Every call goes through DatadogClient.call(), which returns the decoded JSON answer. A 429 waits
for the X-RateLimit-Reset seconds Datadog gives (else the backoff), a 5xx or a failed connection
waits the backoff (doubled each time); a request is given up once the next wait would pass
`retry_timeout` seconds after its first attempt. A 403 is explained: /api/v1/validate tells
whether the API key or the application key was refused. Keys never appear in messages.
"""

from __future__ import absolute_import, division, print_function

import json
import time

try:
    import urllib3
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.exceptions import ApiException
    from datadog_api_client.v1.api.authentication_api import AuthenticationApi
    from datadog_api_client.v1.api.dashboards_api import DashboardsApi
    from datadog_api_client.v1.api.monitors_api import MonitorsApi
    from datadog_api_client.v2.api.downtimes_api import DowntimesApi
except ImportError:  # the modules report it with missing_required_lib()
    pass

API_KEY_SOURCES = "DD_API_KEY in the environment, or datadog_api_key (vault)"
APP_KEY_SOURCES = "DD_APP_KEY in the environment, or datadog_app_key (vault)"


class DatadogError(Exception):
    """A failed call, with a message fit for the user (no keys in it)."""


class DatadogClient(object):
    """The typed endpoints of datadog-api-client, answering raw JSON, with the role's retry policy."""

    def __init__(self, api_url, api_key, app_key, retry_timeout=60.0, retry_backoff=1.0, request_timeout=30.0,
                 sleep=time.sleep, clock=time.monotonic):
        config = Configuration(
            host=api_url.rstrip("/"),
            api_key={"apiKeyAuth": api_key, "appKeyAuth": app_key},
            # Raw answers: the role compares JSON, and a model must not drop fields it doesn't know.
            preload_content=False,
            # Bodies are checked (more strictly) before any request: the client sends them as they are.
            check_input_type=False,
            spec_property_naming=True,
            request_timeout=request_timeout,
            enable_retry=False,
            compress=False,
            is_iac=True,
        )
        self.api_url = config.host
        self.retry_timeout = float(retry_timeout)
        self.retry_backoff = float(retry_backoff)
        self.sleep = sleep
        self.clock = clock
        self.attempts = 0
        self.waited = 0.0
        self._client = ApiClient(config)
        self.dashboards = DashboardsApi(self._client)
        self.monitors = MonitorsApi(self._client)
        self.downtimes = DowntimesApi(self._client)
        self.authentication = AuthenticationApi(self._client)

    def close(self):
        self._client.close()

    def call(self, what, endpoint, *args, **kwargs):
        """Run `endpoint(*args, **kwargs)`; `what` ("GET /api/v1/monitor") names it in messages."""
        started = self.clock()
        tries = 0
        while True:
            tries += 1
            self.attempts += 1
            try:
                response = endpoint(*args, **kwargs)
            except ApiException as err:
                status, headers, reason = err.status, err.headers or {}, _reason(err)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                status, headers, reason = None, {}, "no answer (%s)" % type(err).__name__
            else:
                return _decode(response)
            if status in (401, 403):
                raise DatadogError(self._forbidden_message(what, status, reason))
            if status is not None and status != 429 and status < 500:
                raise DatadogError("Datadog answered %s to %s at %s: %s" % (status, what, self.api_url, reason))
            wait = self._wait(status, headers, tries)
            elapsed = self.clock() - started
            if elapsed + wait > self.retry_timeout:
                raise DatadogError(
                    "Datadog kept failing %s at %s: %d attempts in %.1f s, the last one answered %s. Gave up "
                    "before passing datadog_resources_retry_timeout (%s s); retry later or raise it."
                    % (what, self.api_url, tries, elapsed,
                       "HTTP %s: %s" % (status, reason) if status else reason, _number(self.retry_timeout)))
            self.waited += wait
            self.sleep(wait)

    def _wait(self, status, headers, tries):
        backoff = self.retry_backoff * (2 ** (tries - 1))
        if status == 429:
            reset = _header(headers, "X-RateLimit-Reset")
            try:
                return max(float(reset), 0.0) if reset is not None else backoff
            except ValueError:
                return backoff
        return backoff

    def _forbidden_message(self, what, status, reason):
        try:
            self.authentication.validate()
        except ApiException as err:
            if err.status in (401, 403):
                return ("Datadog refused the API key (HTTP %s from /api/v1/validate at %s): check %s; it must be "
                        "an API key of the organisation on this site." % (err.status, self.api_url, API_KEY_SOURCES))
        except (urllib3.exceptions.HTTPError, OSError):
            pass
        else:
            return ("Datadog answered %s to %s at %s although the API key is valid: check the application key, "
                    "%s; it must belong to the same organisation as the API key and be allowed to manage "
                    "dashboards, monitors and downtimes. (%s)" % (status, what, self.api_url, APP_KEY_SOURCES, reason))
        return ("Datadog answered %s to %s at %s: check %s and %s. (%s)"
                % (status, what, self.api_url, API_KEY_SOURCES, APP_KEY_SOURCES, reason))


def _decode(response):
    data = response.data
    if not data:
        return None
    return json.loads(data.decode("utf-8"))


def _reason(err):
    """Datadog's own words: the `errors` of the body (already decoded by the client), else the body."""
    body = err.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return "; ".join(str(e) for e in errors)[:2000]
    text = body if isinstance(body, str) else json.dumps(body) if body else ""
    return text.strip()[:500] or err.reason or "no details"


def _header(headers, name):
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _number(value):
    return ("%f" % value).rstrip("0").rstrip(".")
