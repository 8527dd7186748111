"""Stand-in for the Datadog trace-agent's receiver and the core agent's DogStatsD server.

Both keep what they receive in files the tests read: /var/log/datadog/standin/traces.jsonl (one span
per line) and dogstatsd.log (one metric line per line); the trace receiver also hands the spans to
forwarder.TraceStats, which sends their stats to an intake when one is configured.
"""
import json
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack

from . import config

log = logging.getLogger('standin')
TRACES_FILE = os.path.join(config.RECORD_DIR, 'traces.jsonl')
DOGSTATSD_FILE = os.path.join(config.RECORD_DIR, 'dogstatsd.log')
SPAN_KEYS = ('service', 'name', 'resource', 'trace_id', 'span_id', 'parent_id', 'type', 'error', 'start',
             'duration', 'meta', 'metrics')


class Recorder:
    """Appends lines to a file, one writer at a time, flushed at once so tests see them."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.lock = threading.Lock()
        self.file = open(path, 'a', buffering=1)
        os.chmod(path, 0o644)
        self.count = 0

    def write(self, lines):
        with self.lock:
            for line in lines:
                self.file.write(line + '\n')
                self.count += 1
            self.file.flush()


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else value


def spans_v04(payload):
    """v0.4: a list of traces, each a list of span maps."""
    for trace in msgpack.unpackb(payload, raw=False, strict_map_key=False):
        for span in trace:
            yield {
                'service': _text(span.get('service')), 'name': _text(span.get('name')),
                'resource': _text(span.get('resource')), 'trace_id': span.get('trace_id'),
                'span_id': span.get('span_id'), 'parent_id': span.get('parent_id', 0),
                'type': _text(span.get('type')) or '', 'error': span.get('error', 0),
                'start': span.get('start'), 'duration': span.get('duration'),
                'meta': {_text(k): _text(v) for k, v in (span.get('meta') or {}).items()},
                'metrics': {_text(k): v for k, v in (span.get('metrics') or {}).items()},
            }


def spans_v05(payload):
    """v0.5: [string table, traces]; a span is a 12-item array of values and string indexes."""
    strings, traces = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    strings = [_text(s) for s in strings]
    for trace in traces:
        for s in trace:
            yield {
                'service': strings[s[0]], 'name': strings[s[1]], 'resource': strings[s[2]],
                'trace_id': s[3], 'span_id': s[4], 'parent_id': s[5], 'type': strings[s[11]],
                'error': s[8], 'start': s[6], 'duration': s[7],
                'meta': {strings[k]: strings[v] for k, v in (s[9] or {}).items()},
                'metrics': {strings[k]: v for k, v in (s[10] or {}).items()},
            }


def info(cfg):
    """What ddtrace reads from GET /info: the endpoints this receiver implements, and its config."""
    return {
        'version': config.version(),
        'git_commit': 'standin',
        'endpoints': ['/v0.4/traces', '/v0.5/traces', '/telemetry/proxy/'],
        'client_drop_p0s': False,
        'span_meta_structs': False,
        'long_running_spans': False,
        'config': {
            'default_env': (cfg.get('apm_config') or {}).get('env') or cfg.get('env') or 'none',
            'receiver_port': config.apm_port(cfg),
            'receiver_socket': '',
            'statsd_port': config.dogstatsd_port(cfg),
            'max_request_bytes': 26214400,
            'analyzed_spans_by_service': {},
        },
    }


def make_trace_handler(cfg, recorder, stats=None):
    decoders = {'/v0.4/traces': spans_v04, '/v0.5/traces': spans_v05}

    class Handler(BaseHTTPRequestHandler):
        server_version = 'datadog-agent-standin'

        def log_message(self, fmt, *args):
            log.debug('trace receiver: ' + fmt, *args)

        def _reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            return self.rfile.read(int(self.headers.get('Content-Length') or 0))

        def do_GET(self):
            if self.path.split('?')[0] == '/info':
                self._reply(200, info(cfg))
            else:
                self._reply(404, {'error': 'not found'})

        def do_PUT(self):
            path, body = self.path.split('?')[0], self._body()
            if path in decoders:
                try:
                    spans = list(decoders[path](body)) if body else []
                except Exception as e:  # noqa: BLE001 - answered as the agent does, with a 400
                    log.warning('trace receiver: cannot decode %s payload: %s', path, e)
                    self._reply(400, {'error': 'cannot decode payload: {}'.format(e)})
                    return
                recorder.write(json.dumps({k: span[k] for k in SPAN_KEYS}, sort_keys=True) for span in spans)
                if stats is not None:
                    stats.add(spans)
                self._reply(200, {'rate_by_service': {'service:,env:': 1}})
            elif path.startswith('/telemetry/proxy/') or path == '/v0.6/stats':
                self._reply(202, {})
            else:
                self._reply(404, {'error': 'not found'})

        do_POST = do_PUT

    return Handler


def serve_traces(cfg):
    """Blocks serving the trace receiver on 127.0.0.1 at apm_config.receiver_port."""
    from . import forwarder
    recorder = Recorder(TRACES_FILE)
    stats = forwarder.TraceStats(cfg)
    stats.start()
    server = ThreadingHTTPServer(('127.0.0.1', config.apm_port(cfg)), make_trace_handler(cfg, recorder, stats))
    server.daemon_threads = True
    log.info('trace receiver listening on 127.0.0.1:%d, recording to %s', config.apm_port(cfg), TRACES_FILE)
    server.serve_forever()


def start_dogstatsd(cfg):
    """A thread receiving DogStatsD datagrams on 127.0.0.1:dogstatsd_port/udp; returns its recorder."""
    recorder = Recorder(DOGSTATSD_FILE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', config.dogstatsd_port(cfg)))

    def loop():
        while True:
            data = sock.recv(65535)
            recorder.write(line for line in data.decode('utf-8', 'replace').split('\n') if line)

    threading.Thread(target=loop, name='dogstatsd', daemon=True).start()
    log.info('DogStatsD listening on 127.0.0.1:%d/udp, recording to %s', config.dogstatsd_port(cfg), DOGSTATSD_FILE)
    return recorder
