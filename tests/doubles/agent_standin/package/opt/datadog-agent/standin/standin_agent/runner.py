"""Stand-in for the Datadog Agent's Python check runner and aggregator.

Loads a check from checks.d (or the stand-in's built-in postgres probe), runs it with the real
datadog_checks_base from PyPI, and turns what it submitted into the series the agent would flush.
"""
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback

# The agent's aggregator accepts host/env/service/version tags; the test stub rejects them unless told.
os.environ.setdefault('DDEV_SKIP_GENERIC_TAGS_CHECK', '1')

from datadog_checks.base import AgentCheck  # noqa: E402
from datadog_checks.base.stubs import aggregator, datadog_agent  # noqa: E402
from datadog_checks.base.stubs.common import ServiceCheckStub  # noqa: E402

from . import config  # noqa: E402

BUILTIN = {'postgres': 'standin_agent.postgres'}
GAUGE, RATE, COUNT, MONOTONIC_COUNT, COUNTER, HISTOGRAM, HISTORATE = range(7)


def _record_service_check(check, check_id, name, status, tags, hostname, message):
    # The stub refuses a message on an OK service check; the agent just sends it.
    aggregator._service_checks[name].append(ServiceCheckStub(check_id, name, status, tags, hostname, message))


aggregator.submit_service_check = _record_service_check


class LoadError(Exception):
    pass


def load_class(name, cfg):
    """The check class for NAME: checks.d/NAME.py first, as the agent does, then built-ins."""
    path = os.path.join(cfg['_checksd'], name + '.py')
    if os.path.isfile(path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            raise LoadError('unable to import module {}: {}'.format(name, traceback.format_exc()))
    elif name in BUILTIN:
        module = importlib.import_module(BUILTIN[name])
    else:
        raise LoadError('unable to import module {}: No module named {!r}'.format(name, name))
    classes = [
        c for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, AgentCheck) and c is not AgentCheck
        and c.__module__ == module.__name__
    ]
    leaves = [c for c in classes if not any(o is not c and issubclass(o, c) for o in classes)]
    if not leaves:
        raise LoadError('unable to find a subclass of the base check in module {}'.format(name))
    return leaves[-1], str(getattr(module, '__version__', 'unversioned'))


class Instance:
    """One configured instance of a check, with the run statistics the agent keeps."""

    def __init__(self, name, cls, version, conf, instance, cfg):
        self.name, self.version, self.source = name, version, conf['source']
        self.instance, self.init_config = instance, conf['init_config']
        self.id = config.instance_id(name, instance, self.init_config)
        self.interval = config.interval(instance, self.init_config)
        self.hostname = config.hostname(cfg)
        self.custom_tags = [str(t) for t in instance.get('tags') or []]
        if instance.get('service'):
            self.custom_tags.append('service:{}'.format(instance['service']))
        self.check = cls(name, self.init_config, [instance])
        self.check.check_id = self.id
        self.previous = {}
        self.total_runs = self.total_errors = self.total_warnings = 0
        self.totals = {'metrics': 0, 'events': 0, 'service_checks': 0}
        self.last = {'metrics': 0, 'events': 0, 'service_checks': 0}
        self.exec_times = []
        self.last_error, self.last_warnings, self.last_success = '', [], 0
        self.series, self.service_checks, self.events = [], [], []
        self.event_platform_events = {}

    def run(self):
        datadog_agent.set_hostname(self.hostname)
        aggregator.reset()
        t0 = time.time()
        try:
            error = self.check.run()
        except Exception:  # noqa: BLE001 - the agent reports it as the run's error
            error = json.dumps([{'message': 'check crashed', 'traceback': traceback.format_exc()}])
        took = time.time() - t0
        now = int(time.time())
        self.series = self._flush(now)
        self.service_checks = [
            {'check': sc.name, 'host_name': sc.hostname or self.hostname, 'timestamp': now,
             'status': sc.status, 'message': sc.message or '', 'tags': self._tags(sc.tags)}
            for scs in aggregator._service_checks.values() for sc in scs
        ]
        self.events = list(aggregator._events)
        # Database Monitoring's events (dbm-metrics, dbm-samples): raw JSON strings, by track type.
        self.event_platform_events = {k: list(v) for k, v in aggregator._event_platform_events.items() if v}
        warnings = list(getattr(self.check, 'warnings', []) or [])
        if hasattr(self.check, 'warnings'):
            self.check.warnings = []
        samples = sum(len(v) for v in aggregator._metrics.values())
        self.last = {'metrics': samples, 'events': len(self.events), 'service_checks': len(self.service_checks)}
        for k, v in self.last.items():
            self.totals[k] += v
        self.total_runs += 1
        self.exec_times = (self.exec_times + [int(took * 1000)])[-32:]
        self.last_warnings = warnings
        self.total_warnings += len(warnings)
        if error:
            self.total_errors += 1
            self.last_error = error
        else:
            self.last_error = ''
            self.last_success = now
        return not error

    def _tags(self, tags):
        out = []
        for t in list(tags or []) + self.custom_tags:
            if t not in out:
                out.append(t)
        return out

    def _flush(self, now):
        """Series as the agent's check sampler flushes them: rates need two runs."""
        series, current = [], {}
        for name, stubs in aggregator._metrics.items():
            for m in stubs:
                tags = self._tags(m.tags)
                host = m.hostname or self.hostname
                key = (name, tuple(sorted(tags)), host, m.type)
                entry = current.setdefault(key, {'name': name, 'tags': tags, 'host': host, 'type': m.type,
                                                 'values': [], 'device': m.device})
                entry['values'].append(m.value)
        for key, e in current.items():
            values, mtype = e['values'], e['type']
            points = []
            if mtype == GAUGE:
                points = [('gauge', e['name'], values[-1])]
            elif mtype in (RATE, MONOTONIC_COUNT):
                prev, at = self.previous.get(key), time.time()
                if prev is not None and values[-1] >= prev[1]:
                    delta = values[-1] - prev[1]
                    if mtype == RATE:
                        points = [('gauge', e['name'], delta / max(at - prev[0], 0.001))]
                    else:
                        points = [('count', e['name'], delta)]
                self.previous[key] = (at, values[-1])
            elif mtype == COUNT:
                points = [('count', e['name'], sum(values))]
            elif mtype == COUNTER:
                points = [('rate', e['name'], sum(values) / float(self.interval))]
            elif mtype in (HISTOGRAM, HISTORATE):
                ordered = sorted(values)
                points = [
                    ('gauge', e['name'] + '.max', ordered[-1]),
                    ('gauge', e['name'] + '.avg', sum(ordered) / len(ordered)),
                    ('gauge', e['name'] + '.median', ordered[(len(ordered) - 1) // 2]),
                    ('gauge', e['name'] + '.95percentile', ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]),
                    ('rate', e['name'] + '.count', len(ordered) / float(self.interval)),
                ]
            for api_type, metric, value in points:
                serie = {'metric': metric, 'points': [[now, value]], 'tags': e['tags'], 'host': e['host'],
                         'type': api_type, 'interval': self.interval if api_type == 'rate' else 0,
                         'source_type_name': 'System'}
                if e['device']:
                    serie['device'] = e['device']
                series.append(serie)
        return series

    def stats(self):
        """The runner statistics, with the field names of the agent's `check --json` output."""
        avg = int(sum(self.exec_times) / len(self.exec_times)) if self.exec_times else 0
        return {
            'CheckName': self.name, 'CheckVersion': self.version, 'CheckConfigSource': self.source,
            'CheckID': self.id, 'Interval': self.interval, 'TotalRuns': self.total_runs,
            'TotalErrors': self.total_errors, 'TotalWarnings': self.total_warnings,
            'MetricSamples': self.last['metrics'], 'Events': self.last['events'],
            'ServiceChecks': self.last['service_checks'], 'TotalMetricSamples': self.totals['metrics'],
            'TotalEvents': self.totals['events'], 'TotalServiceChecks': self.totals['service_checks'],
            'ExecutionTimes': self.exec_times, 'AverageExecutionTime': avg,
            'LastExecutionTime': self.exec_times[-1] if self.exec_times else 0,
            'LastSuccessDate': self.last_success, 'LastError': self.last_error,
            'LastWarnings': self.last_warnings, 'UpdateTimestamp': int(time.time()),
        }

    def aggregator_data(self):
        return {'metrics': self.series, 'service_checks': self.service_checks, 'events': self.events,
                'sketches': [], 'event_platform_events': {
                    k: [json.loads(e) for e in v] for k, v in self.event_platform_events.items()}}


def instances_for(name, cfg, configs):
    """Instance objects for every configured instance of check NAME (LoadError when it can't load).
    A config without instances (a logs-only integration, such as the lab's flask_app.d) schedules no
    check, as the real agent does: nothing is loaded and nothing fails."""
    if not any(conf.get('instances') for conf in configs.get(name, [])):
        return []
    cls, version = load_class(name, cfg)
    out = []
    for conf in configs.get(name, []):
        for inst in conf['instances']:
            out.append(Instance(name, cls, version, conf, inst, cfg))
    return out
