"""Stand-in for the Datadog HTTP API (api.datadoghq.com) in tests: Datadog's servers can't be reached from here.

It serves what roles/datadog_resources calls, checks keys and bodies the way Datadog does, keeps
state, and can be told to fail. It listens on loopback only.

Command line:
    python tests/doubles/fake_datadog_api/server.py [--port N] [--state FILE]
        [--api-key KEY] [--app-key KEY] [--host 127.0.0.1] [--verbose]
  --port 0 (the default) picks a free port. Once it accepts connections it prints one line,
  `fake-datadog-api listening on http://127.0.0.1:PORT`, on stdout. --state FILE loads the
  objects from FILE when it exists and writes them back after every change. The keys it accepts
  default to $FAKE_DD_API_KEY / $FAKE_DD_APP_KEY, else the DEFAULT_* values in app.py. Point the
  role at it with `-e datadog_api_url=http://127.0.0.1:PORT` and the same keys in
  DD_API_KEY / DD_APP_KEY. SIGTERM or Ctrl-C stops it.

Datadog endpoints (need DD-API-KEY and DD-APPLICATION-KEY headers, else 403 {"errors": ["Forbidden"]}):
    GET  /api/v1/validate                    API key only: {"valid": true}
    GET|POST /api/v1/dashboard               list ({"dashboards": [summaries]}, ?start&count) | create
    GET|PUT|DELETE /api/v1/dashboard/{id}
    GET|POST /api/v1/monitor                 list (?name substring, ?monitor_tags, ?page&page_size) | create
    GET|PUT|DELETE /api/v1/monitor/{id}      PUT replaces `options` as a whole
    GET|POST /api/v2/downtime                list (?current_only=true: only those active now at the fake's
                                             clock; ?page[offset]&page[limit]) | create
    GET|PATCH|DELETE /api/v2/downtime/{id}   DELETE cancels (status "canceled"), as Datadog does
  Bodies are checked with datadog-api-client's models; a bad one gets 400 {"errors": [...]} naming
  the path of the bad field.

Test control (no keys; never Datadog's; not counted in /fake/requests):
    GET  /fake/state        every object: {"dashboards": {id: dashboard}, "monitors": {id: monitor},
                            "downtimes": {id: downtime data}, ...}; this is the endpoint to list state
    PUT  /fake/state        replace the state with the JSON body
    POST /fake/reset        empty state, request log and injections
    GET  /fake/clock        the fake's time: {"now": ISO 8601 UTC, "offset_seconds": from the real time}
    PUT  /fake/clock        {"now": "2026-12-08T11:00:00+00:00"}: it is that time from here on (time goes on);
                            it governs the downtimes' status and current_downtime, and server timestamps
    DELETE /fake/clock      back to the real time (so does /fake/reset)
    GET  /fake/requests     the Datadog requests seen: [{"method", "path", "query", "status", "time"}]
    DELETE /fake/requests   forget them
    POST /fake/inject       {"status": 429|500|503|403, "count": N or null (every request),
                             "path": "/api/v1/monitor" (prefix, default "/api/"), "method": "GET",
                             "reset": seconds (429's X-RateLimit-Reset, default 1)}
    DELETE /fake/inject     stop injecting
"""

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fake_datadog_api.app import DEFAULT_API_KEY, DEFAULT_APP_KEY, FakeDatadog, Reply  # noqa: E402


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-datadog-api/1"
    protocol_version = "HTTP/1.1"

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.server.fake.handle(self.command, self.path, self.headers, body)
        except Exception as err:  # a bad control request or a bug of the fake: say so, keep serving
            reply = Reply(500, {"errors": ["fake-datadog-api: %s: %s" % (type(err).__name__, err)]})
        data = b"" if reply.payload is None else json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-datadog-api: %s\n" % (fmt % args))


class FakeDatadogServer(ThreadingHTTPServer):
    """The HTTP server around a FakeDatadog; `url` is its base URL."""

    daemon_threads = True

    def __init__(self, fake, host="127.0.0.1", port=0, verbose=False):
        super().__init__((host, port), _Handler)
        self.fake = fake
        self.verbose = verbose

    @property
    def url(self):
        return "http://%s:%d" % self.server_address[:2]

    def start_background(self):
        """Serve in a daemon thread (for tests in the same process); returns self."""
        threading.Thread(target=self.serve_forever, name="fake-datadog-api", daemon=True).start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--state", help="JSON file the objects are loaded from and saved to")
    parser.add_argument("--api-key", default=os.environ.get("FAKE_DD_API_KEY", DEFAULT_API_KEY))
    parser.add_argument("--app-key", default=os.environ.get("FAKE_DD_APP_KEY", DEFAULT_APP_KEY))
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("--host must be a loopback address")
    fake = FakeDatadog(api_key=args.api_key, app_key=args.app_key, state_file=args.state)
    server = FakeDatadogServer(fake, args.host, args.port, args.verbose)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("fake-datadog-api listening on %s" % server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
