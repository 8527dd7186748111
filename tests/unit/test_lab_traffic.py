"""lab-traffic (roles/traffic/files/lab-traffic): bounded bursts to the app's routes (the seed's three and
/api/db)."""
import http.server
import importlib.machinery
import importlib.util
import threading
from collections import Counter
from pathlib import Path

import pytest

DB = ["--dbname", "db", "--table", "t", "--port", "1"]
SCRIPT = Path(__file__).resolve().parents[2] / "roles/traffic/files/lab-traffic"


def load():
    loader = importlib.machinery.SourceFileLoader("lab_traffic", str(SCRIPT))
    spec = importlib.util.spec_from_loader("lab_traffic", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture()
def app():
    """A loopback HTTP server that counts hits per path; /api/apm fails to prove failures count."""
    hits = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits[self.path] += 1
            self.send_response(500 if self.server.broken and self.path == "/api/apm" else 200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.broken = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, hits
    server.shutdown()


def test_bursts_hit_each_route_the_asked_number_of_times(app, capsys):
    server, hits = app
    url = f"http://127.0.0.1:{server.server_port}"
    rc = load().main(DB + ["--url", url, "--bursts", "2", "--requests-per-route", "5", "--sql-rounds", "0",
                      "--pause", "0"])
    assert rc == 0
    assert hits == Counter({"/": 10, "/api/trace": 10, "/api/apm": 10, "/api/db": 10})
    out = capsys.readouterr().out
    assert "http burst 2/2: 20 ok, 0 failed" in out


def test_failed_requests_make_the_run_fail(app, capsys):
    server, hits = app
    server.broken = True
    rc = load().main(DB + ["--url", f"http://127.0.0.1:{server.server_port}", "--bursts", "1",
                      "--requests-per-route", "3", "--sql-rounds", "0", "--pause", "0"])
    assert rc == 1
    assert "done with 3 failures" in capsys.readouterr().out


def test_time_bound_stops_the_run(app):
    server, hits = app
    rc = load().main(DB + ["--url", f"http://127.0.0.1:{server.server_port}", "--bursts", "1000",
                      "--requests-per-route", "1000", "--sql-rounds", "0", "--max-seconds", "0.3"])
    assert rc == 0
    assert 0 < sum(hits.values()) < 4000


@pytest.mark.parametrize("argv", [["--url"], ["--bursts", "-1"], ["--rows", "1000000"], ["--table", "x; drop table y"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit) as exc:
        load().main(DB + ["--url", "http://127.0.0.1:1"] + argv)
    assert exc.value.code == 2
