"""Stand-in for the Datadog Agent's forwarders: what the agent collected, sent to Datadog's intake.

Only when an intake URL is configured explicitly (the real agent's settings: `dd_url` / DD_DD_URL for
the core agent, `apm_config.apm_dd_url` / DD_APM_DD_URL for the trace agent, `logs_config.logs_dd_url`
/ DD_LOGS_CONFIG_LOGS_DD_URL with `logs_no_ssl` for logs): the stand-in never sends to Datadog's own
sites. Bodies are those the intake takes:
  POST {dd_url}/api/v2/series      MetricPayload JSON (the check series; type 1 count, 2 rate, 3 gauge)
  POST {dd_url}/api/v1/check_run   the service checks (a list of ServiceCheck)
  POST {dd_url}/intake/            host metadata: internalHostname, host-tags {system: datadog.yaml tags}
  POST {apm_dd_url}/api/v0.2/stats StatsPayload, msgpack: hits, errors, duration of the top-level spans
                                   received, per 10 s bucket and (service, name, resource, status, type)
  POST {logs}/api/v2/logs          a list of log items (message, ddsource, service, hostname, ddtags)
  POST {dbm metrics}/api/v2/dbmmetrics      Database Monitoring's dbm-metrics events (a JSON list)
  POST {dbm samples}/api/v2/databasequery   its dbm-samples events (plans; a JSON list)
The two Database Monitoring intakes are set as the agent's event platform endpoints are:
`database_monitoring.metrics.logs_dd_url` / DD_DATABASE_MONITORING_METRICS_LOGS_DD_URL (host:port)
with `logs_no_ssl`, and the same under `database_monitoring.samples`.
Each request carries DD-API-KEY. A failed request is kept and retried at the next flush (up to 100).
"""
import json
import logging
import os
import socket
import subprocess
import threading
import time
import urllib.request

import msgpack

from . import config

log = logging.getLogger('standin')
INTAKE_TYPE = {'count': 1, 'rate': 2, 'gauge': 3}
BUCKET_NS = 10 * 10 ** 9
MAX_PENDING = 100


def core_url(cfg):
    return (os.environ.get('DD_DD_URL') or cfg.get('dd_url') or '').rstrip('/') or None


def apm_url(cfg):
    return (os.environ.get('DD_APM_DD_URL') or (cfg.get('apm_config') or {}).get('apm_dd_url') or '').rstrip('/') or None


def logs_url(cfg):
    logs_config = cfg.get('logs_config') or {}
    host = os.environ.get('DD_LOGS_CONFIG_LOGS_DD_URL') or logs_config.get('logs_dd_url')
    if not host:
        return None
    no_ssl = config.truthy(os.environ.get('DD_LOGS_CONFIG_LOGS_NO_SSL', logs_config.get('logs_no_ssl')))
    return '%s://%s' % ('http' if no_ssl else 'https', host)


def event_platform_url(cfg, track):
    """`database_monitoring.<track>.logs_dd_url` (host:port) and `logs_no_ssl`, as the agent reads them."""
    section = ((cfg.get('database_monitoring') or {}).get(track) or {})
    env = 'DD_DATABASE_MONITORING_{}_'.format(track.upper())
    host = os.environ.get(env + 'LOGS_DD_URL') or section.get('logs_dd_url')
    if not host:
        return None
    no_ssl = config.truthy(os.environ.get(env + 'LOGS_NO_SSL', section.get('logs_no_ssl')))
    return '%s://%s' % ('http' if no_ssl else 'https', host)


def host_tags(cfg):
    tags = cfg.get('tags') or []
    return [str(t) for t in (tags.split() if isinstance(tags, str) else tags)]


class Sender:
    """POSTs to one intake with the API key; what fails is kept for the next flush."""

    def __init__(self, base, api_key):
        self.base, self.api_key = base, api_key
        self.pending, self.lock = [], threading.Lock()
        self.sent = self.failed = 0

    def post(self, path, body, content_type='application/json'):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self.lock:
            self.pending = (self.pending + [(path, data, content_type)])[-MAX_PENDING:]
            queue, self.pending = self.pending, []
        for index, (p, d, ct) in enumerate(queue):
            request = urllib.request.Request(self.base + p, data=d, method='POST', headers={
                'Content-Type': ct, 'DD-API-KEY': self.api_key, 'User-Agent': 'datadog-agent-standin'})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
                self.sent += 1
            except Exception as e:  # noqa: BLE001 - kept for the next flush, as the agent's retry queue
                if getattr(e, 'code', None) in (400, 403, 413):
                    log.error('intake refused POST %s: %s %s', p, e, _body(e))
                    self.failed += 1
                    continue
                log.warning('intake unreachable (POST %s: %s): kept for the next flush', p, e)
                with self.lock:
                    self.pending = (queue[index:] + self.pending)[-MAX_PENDING:]
                return


def _body(err):
    try:
        return err.read().decode('utf-8', 'replace')[:500]
    except Exception:  # noqa: BLE001
        return ''


def series_payload(series):
    """The runner's series (metric, points [[ts, value]], tags, host, type, interval) as a MetricPayload."""
    return {'series': [{
        'metric': s['metric'], 'type': INTAKE_TYPE.get(s['type'], 0),
        'points': [{'timestamp': int(ts), 'value': float(v)} for ts, v in s['points']],
        'tags': list(s['tags']), 'resources': [{'name': s['host'], 'type': 'host'}],
        'interval': int(s.get('interval') or 0), 'source_type_name': s.get('source_type_name', 'System'),
    } for s in series]}


def host_metadata(cfg):
    name = config.hostname(cfg)
    return {'internalHostname': name, 'agentVersion': config.version(), 'os': 'linux',
            'host-tags': {'system': host_tags(cfg)},
            'meta': {'hostname': name, 'socket-hostname': socket.gethostname(), 'socket-fqdn': socket.getfqdn(),
                     'timezones': [time.strftime('%Z')], 'host_aliases': []}}


def _top_level(span, by_id):
    parent = by_id.get(span.get('parent_id'))
    return (not span.get('parent_id') or parent is None or parent.get('service') != span.get('service')
            or (span.get('metrics') or {}).get('_dd.top_level') == 1 or (span.get('metrics') or {}).get('_dd.measured') == 1)


def stats_payload(spans, hostname, agent_env='none'):
    """The trace-agent's StatsPayload for SPANS (dicts as the receiver records them)."""
    by_id = {s.get('span_id'): s for s in spans}
    clients = {}
    for span in spans:
        if not _top_level(span, by_id):
            continue
        meta = span.get('meta') or {}
        client = clients.setdefault((meta.get('env') or agent_env, meta.get('version') or ''), {})
        start = int(span['start']) + int(span['duration'])
        bucket = client.setdefault(start - start % BUCKET_NS, {})
        status = int(meta.get('http.status_code') or 0)
        key = (span['service'], span['name'], span['resource'], status, span.get('type') or '')
        group = bucket.setdefault(key, {'Service': key[0], 'Name': key[1], 'Resource': key[2],
                                        'HTTPStatusCode': status, 'Type': key[4], 'DBType': '', 'Hits': 0,
                                        'Errors': 0, 'Duration': 0, 'OkSummary': b'', 'ErrorSummary': b'',
                                        'Synthetics': False, 'TopLevelHits': 0})
        group['Hits'] += 1
        group['TopLevelHits'] += 1
        group['Errors'] += 1 if span.get('error') else 0
        group['Duration'] += int(span['duration'])
    return {'AgentHostname': hostname, 'AgentEnv': agent_env, 'AgentVersion': config.version(),
            'ClientComputed': False, 'Stats': [
                {'Hostname': hostname, 'Env': env, 'Version': version, 'Stats': [
                    {'Start': start, 'Duration': BUCKET_NS, 'Stats': list(groups.values())}
                    for start, groups in sorted(buckets.items())]}
                for (env, version), buckets in sorted(clients.items())]}


class TraceStats:
    """Collects the spans the receiver gets and sends their stats every flush_seconds."""

    def __init__(self, cfg, flush_seconds=10):
        self.url = apm_url(cfg)
        self.sender = Sender(self.url, str(cfg.get('api_key'))) if self.url else None
        # The trace-agent's env: apm_config.env, else the agent's `env`, else "none".
        self.hostname = config.hostname(cfg)
        self.env = (cfg.get('apm_config') or {}).get('env') or cfg.get('env') or 'none'
        self.spans, self.lock, self.flush_seconds = [], threading.Lock(), flush_seconds

    def add(self, spans):
        if self.sender:
            with self.lock:
                self.spans.extend(spans)

    def start(self):
        if self.sender:
            threading.Thread(target=self._loop, name='trace-stats', daemon=True).start()
            log.info('trace stats forwarded to %s/api/v0.2/stats every %d s', self.url, self.flush_seconds)

    def _loop(self):
        while True:
            time.sleep(self.flush_seconds)
            with self.lock:
                spans, self.spans = self.spans, []
            if spans:
                self.sender.post('/api/v0.2/stats', msgpack.packb(stats_payload(spans, self.hostname, self.env)),
                                 'application/msgpack')


class Core:
    """The core agent's series, service checks and host metadata, flushed every flush_seconds."""

    def __init__(self, cfg, flush_seconds=15, metadata_seconds=600):
        self.url = core_url(cfg)
        self.sender = Sender(self.url, str(cfg.get('api_key'))) if self.url else None
        self.cfg, self.flush_seconds, self.metadata_seconds = cfg, flush_seconds, metadata_seconds
        self.series, self.checks, self.lock = [], [], threading.Lock()

    def add(self, series, service_checks):
        if self.sender:
            with self.lock:
                self.series.extend(series)
                self.checks.extend(service_checks)

    def start(self):
        if self.sender:
            threading.Thread(target=self._loop, name='forwarder', daemon=True).start()
            log.info('series, service checks and host metadata forwarded to %s', self.url)

    def _loop(self):
        metadata_due = 0
        while True:
            if time.time() >= metadata_due:
                self.sender.post('/intake/', host_metadata(self.cfg))
                metadata_due = time.time() + self.metadata_seconds
            with self.lock:
                series, checks, self.series, self.checks = self.series, self.checks, [], []
            if series:
                self.sender.post('/api/v2/series', series_payload(series))
            if checks:
                self.sender.post('/api/v1/check_run', checks)
            time.sleep(self.flush_seconds)


class EventPlatform:
    """Database Monitoring's events (the checks' dbm-metrics and dbm-samples), sent in batches."""

    TRACKS = {'dbm-metrics': ('metrics', '/api/v2/dbmmetrics'), 'dbm-samples': ('samples', '/api/v2/databasequery')}

    def __init__(self, cfg, flush_seconds=10):
        self.senders = {}
        for track, (name, path) in self.TRACKS.items():
            url = event_platform_url(cfg, name)
            if url:
                self.senders[track] = (Sender(url, str(cfg.get('api_key'))), path)
        self.events, self.lock, self.flush_seconds = {}, threading.Lock(), flush_seconds

    def add(self, events_by_track):
        with self.lock:
            for track, events in events_by_track.items():
                if track in self.senders:
                    self.events.setdefault(track, []).extend(json.loads(e) for e in events)

    def start(self):
        if self.senders:
            threading.Thread(target=self._loop, name='event-platform', daemon=True).start()
            log.info('database monitoring events forwarded to %s',
                     ', '.join(s.base + p for s, p in self.senders.values()))

    def _loop(self):
        while True:
            time.sleep(self.flush_seconds)
            with self.lock:
                events, self.events = self.events, {}
            for track, batch in events.items():
                sender, path = self.senders[track]
                sender.post(path, batch)


class Logs:
    """The `logs:` sections of type journald (include_units), tailed with journalctl and sent in batches."""

    def __init__(self, cfg, configs, flush_seconds=5):
        self.url = logs_url(cfg)
        enabled = config.truthy(cfg.get('logs_enabled'))
        self.sources = [s for confs in configs.values() for c in confs for s in c.get('logs') or []
                        if s.get('type') == 'journald'] if enabled and self.url else []
        self.sender = Sender(self.url, str(cfg.get('api_key'))) if self.sources else None
        self.hostname, self.flush_seconds = config.hostname(cfg), flush_seconds
        self.items, self.lock = [], threading.Lock()

    def start(self):
        if not self.sender:
            return
        for source in self.sources:
            threading.Thread(target=self._tail, args=(source,), name='logs-journald', daemon=True).start()
        threading.Thread(target=self._loop, name='logs-sender', daemon=True).start()
        log.info('journald logs of %s forwarded to %s', [s.get('include_units') for s in self.sources], self.url)

    def _tail(self, source):
        argv = ['journalctl', '--follow', '--output=json', '--since=now', '--no-pager']
        for unit in source.get('include_units') or []:
            argv += ['--unit', unit]
        tags = ','.join(str(t) for t in source.get('tags') or [])
        while True:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for line in process.stdout:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                message = entry.get('MESSAGE')
                if not isinstance(message, str):
                    continue
                item = {'message': message, 'ddsource': source.get('source') or 'journald',
                        'service': source.get('service') or entry.get('SYSLOG_IDENTIFIER', ''),
                        'hostname': self.hostname, 'ddtags': tags}
                with self.lock:
                    self.items.append(item)
            process.wait()
            time.sleep(5)

    def _loop(self):
        while True:
            time.sleep(self.flush_seconds)
            with self.lock:
                items, self.items = self.items[:1000], self.items[1000:]
            if items:
                self.sender.post('/api/v2/logs', items)
