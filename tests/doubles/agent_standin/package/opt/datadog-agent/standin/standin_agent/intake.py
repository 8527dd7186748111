"""Stand-in for the Datadog trace-agent's receiver and the core agent's DogStatsD server.

Both keep what they receive in files the tests read: /var/log/datadog/standin/traces.jsonl (one span
per line), profiles.jsonl (one line per profile upload) and dogstatsd.log (one metric line per line).
The trace receiver also hands the spans to forwarder.TraceStats, which sends their stats to an intake
when one is configured; DogStatsD's gauges, counts and distributions are aggregated every 10 s into
series that the core forwarder sends with the checks' (histograms, sets, events and service checks
are only recorded). A distribution (ddtrace's runtime metrics are distributions) goes out as a gauge
of its average over the flush, where the real agent sends a DDSketch to /api/beta/sketches: an
`avg:` query reads the same value from either.
"""
import email.parser
import email.policy
import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack

from . import config

log = logging.getLogger('standin')
TRACES_FILE = os.path.join(config.RECORD_DIR, 'traces.jsonl')
DOGSTATSD_FILE = os.path.join(config.RECORD_DIR, 'dogstatsd.log')
PROFILES_FILE = os.path.join(config.RECORD_DIR, 'profiles.jsonl')
PROFILE_PATH = '/profiling/v1/input'
DOGSTATSD_FLUSH_SECONDS = 10
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
        # The real agent's debugger intake too (ddtrace's Code Origin for Spans looks for it, else it logs
        # `debugger::unsupported_agent`): what arrives there is accepted and dropped.
        'endpoints': ['/v0.4/traces', '/v0.5/traces', '/telemetry/proxy/', PROFILE_PATH, '/debugger/v1/input',
                      '/debugger/v2/input', '/debugger/v1/diagnostics'],
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


def profile_record(content_type, body):
    """What a profile upload (multipart/form-data, as ddtrace's profiler sends it) holds: its `event` part (JSON:
    family, attachments, tags_profiler, start, end) and the names and sizes of its files."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b'Content-Type: ' + content_type.encode() + b'\r\n\r\n' + body)
    if not message.is_multipart():
        raise ValueError('a profile upload is multipart/form-data')
    record = {'received': time.time(), 'bytes': len(body), 'event': None, 'files': {}}
    for part in message.iter_parts():
        name, filename = part.get_param('name', header='content-disposition'), part.get_filename()
        payload = part.get_payload(decode=True) or b''
        if name == 'event':
            record['event'] = json.loads(payload.decode('utf-8'))
        elif filename or name:
            record['files'][filename or name] = len(payload)
    if record['event'] is None:
        raise ValueError('no `event` part in the profile upload')
    return record


def make_trace_handler(cfg, recorder, stats=None, profiles=None):
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
            if 'chunked' not in (self.headers.get('Transfer-Encoding') or '').lower():
                return self.rfile.read(int(self.headers.get('Content-Length') or 0))
            # Chunked (libdatadog's profile exporter sends so): size line, data, CRLF; a 0 size ends it.
            data = b''
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()

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
            elif path == PROFILE_PATH and profiles is not None:
                try:
                    record = profile_record(self.headers.get('Content-Type') or '', body)
                except Exception as e:  # noqa: BLE001 - the intake refuses what it can't read
                    log.warning('trace receiver: cannot read a profile upload: %s', e)
                    self._reply(400, {'error': 'cannot read profile: {}'.format(e)})
                    return
                profiles.write([json.dumps(record, sort_keys=True)])
                self._reply(200, {})
            elif path.startswith(('/telemetry/proxy/', '/debugger/')) or path == '/v0.6/stats':
                self._reply(202, {})
            else:
                self._reply(404, {'error': 'not found'})

        do_POST = do_PUT

    return Handler


def serve_traces(cfg):
    """Blocks serving the trace receiver on 127.0.0.1 at apm_config.receiver_port."""
    from . import forwarder
    recorder, profiles = Recorder(TRACES_FILE), Recorder(PROFILES_FILE)
    stats = forwarder.TraceStats(cfg)
    stats.start()
    server = ThreadingHTTPServer(('127.0.0.1', config.apm_port(cfg)),
                                 make_trace_handler(cfg, recorder, stats, profiles))
    server.daemon_threads = True
    log.info('trace receiver listening on 127.0.0.1:%d, recording to %s', config.apm_port(cfg), TRACES_FILE)
    server.serve_forever()


def parse_dogstatsd(line):
    """`name:value|type[|@rate][|#tag,...]` as (name, type, value, rate, tags); None for what isn't a metric."""
    if line.startswith(('_e{', '_sc|')) or ':' not in line:
        return None
    name, rest = line.split(':', 1)
    fields = rest.split('|')
    if len(fields) < 2:
        return None
    try:
        value = float(fields[0])
    except ValueError:
        return None
    rate, tags = 1.0, []
    for field in fields[2:]:
        if field.startswith('@'):
            rate = float(field[1:]) or 1.0
        elif field.startswith('#'):
            tags = [t for t in field[1:].split(',') if t]
    return name, fields[1], value, rate, tags


class DogStatsDAggregator:
    """Gauges (last value), counts (summed, scaled by the sample rate) and distributions (averaged) per context,
    flushed as series."""

    def __init__(self, hostname, sink, flush_seconds=DOGSTATSD_FLUSH_SECONDS):
        self.hostname, self.sink, self.flush_seconds = hostname, sink, flush_seconds
        self.contexts, self.lock = {}, threading.Lock()

    def add(self, line):
        parsed = parse_dogstatsd(line)
        if parsed is None or parsed[1] not in ('g', 'c', 'd'):
            return
        name, mtype, value, rate, tags = parsed
        host = next((t[5:] for t in tags if t.startswith('host:')), self.hostname)
        tags = [t for t in tags if not t.startswith('host:')]
        key = (name, mtype, tuple(sorted(tags)), host)
        with self.lock:
            if mtype == 'g':
                self.contexts[key] = value
            elif mtype == 'c':
                self.contexts[key] = self.contexts.get(key, 0.0) + value / rate
            else:
                self.contexts.setdefault(key, []).append(value)

    def flush(self):
        with self.lock:
            contexts, self.contexts = self.contexts, {}
        now = int(time.time())
        return [{'metric': name, 'points': [[now, sum(value) / len(value) if mtype == 'd' else value]],
                 'tags': list(tags), 'host': host, 'type': 'count' if mtype == 'c' else 'gauge', 'interval': 0,
                 'source_type_name': 'System'}
                for (name, mtype, tags, host), value in contexts.items()]

    def start(self):
        def loop():
            while True:
                time.sleep(self.flush_seconds)
                series = self.flush()
                if series:
                    self.sink(series)
        threading.Thread(target=loop, name='dogstatsd-flush', daemon=True).start()


def start_dogstatsd(cfg, sink=None):
    """A thread receiving DogStatsD datagrams on 127.0.0.1:dogstatsd_port/udp; returns its recorder. With SINK
    (a callable taking series), gauges and counts are aggregated and handed to it every 10 s."""
    recorder = Recorder(DOGSTATSD_FILE)
    aggregator = DogStatsDAggregator(config.hostname(cfg), sink) if sink else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', config.dogstatsd_port(cfg)))

    def loop():
        while True:
            data = sock.recv(65535)
            lines = [line for line in data.decode('utf-8', 'replace').split('\n') if line]
            recorder.write(lines)
            if aggregator:
                for line in lines:
                    aggregator.add(line)

    if aggregator:
        aggregator.start()
    threading.Thread(target=loop, name='dogstatsd', daemon=True).start()
    log.info('DogStatsD listening on 127.0.0.1:%d/udp, recording to %s', config.dogstatsd_port(cfg), DOGSTATSD_FILE)
    return recorder
