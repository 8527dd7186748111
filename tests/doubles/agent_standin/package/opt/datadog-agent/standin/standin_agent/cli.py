"""Stand-in for the `datadog-agent` command line: run, check, status, configcheck, hostname, version.

Output follows the real agent's shapes where the lab's tests read them (`check --json`, the
`configcheck` blocks, the `status` sections); see tests/doubles/agent_standin/README.md for the gaps.
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

import yaml

from . import config

# The agent's `check` command prints each event platform track under these titles.
EVENT_PLATFORM_NAMES = {
    'dbm-samples': 'Database Monitoring Query Samples', 'dbm-metrics': 'Database Monitoring Query Metrics',
    'dbm-activity': 'Database Monitoring Activity Samples', 'dbm-metadata': 'Database Monitoring Metadata',
}
STATUS_FILE = os.path.join(config.RUN_DIR, 'standin-status.json')
TRACE_STATUS_FILE = os.path.join(config.RUN_DIR, 'standin-trace-status.json')
log = logging.getLogger('standin')


def _setup_logging(logfile):
    handlers = [logging.StreamHandler(sys.stderr)]
    try:
        handlers.append(logging.FileHandler(os.path.join(config.LOG_DIR, logfile)))
    except OSError:
        pass
    logging.basicConfig(level=logging.INFO, handlers=handlers,
                        format='%(asctime)s UTC | CORE | %(levelname)s | (%(name)s) | %(message)s')
    logging.Formatter.converter = time.gmtime


def _load_or_exit(args):
    try:
        return config.load(args.cfgpath)
    except Exception as e:  # noqa: BLE001 - the agent prints the error and exits non-zero
        print('Error: unable to load Datadog config file: {}'.format(e), file=sys.stderr)
        sys.exit(255)


def _require_api_key(cfg, what):
    if not str(cfg.get('api_key') or '').strip():
        log.error('%s: no API key configured, exiting', what)
        print('Error: no API key configured, exiting', file=sys.stderr)
        sys.exit(1)


def _write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f)
    os.replace(tmp, path)


def cmd_run(args):
    _setup_logging('agent.log')
    cfg = _load_or_exit(args)
    _require_api_key(cfg, 'agent')
    if args.pidfile:
        with open(args.pidfile, 'w') as f:
            f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from . import forwarder, intake
    core = forwarder.Core(cfg)
    dsd = intake.start_dogstatsd(cfg, sink=lambda series: core.add(series, []))
    state = {'pid': os.getpid(), 'started': int(time.time()), 'hostname': config.hostname(cfg), 'checks': {},
             'errors': {}}
    from . import runner
    configs, errors = config.check_configs(cfg)
    state['errors'] = dict(errors)
    scheduled = []
    for name in sorted(configs):
        try:
            scheduled += runner.instances_for(name, cfg, configs)
        except Exception as e:  # noqa: BLE001 - a broken check must not stop the agent
            state['errors'][name] = str(e)
            log.error('could not load check %s: %s', name, e)
    core.start()
    dbm = forwarder.EventPlatform(cfg)
    dbm.start()
    forwarder.Logs(cfg, configs).start()
    due = {inst.id: 0.0 for inst in scheduled}
    log.info('agent %s (stand-in) started: hostname %s, %d check instance(s)', config.version(),
             state['hostname'], len(scheduled))
    while True:
        now = time.time()
        for inst in scheduled:
            if due[inst.id] <= now:
                ok = inst.run()
                due[inst.id] = now + inst.interval
                core.add(inst.series, inst.service_checks)
                dbm.add(inst.event_platform_events)
                if not ok:
                    log.error('Error running check %s: %s', inst.id, inst.last_error)
                state['checks'][inst.id] = inst.stats()
        state['dogstatsd_packets'] = dsd.count
        state['updated'] = int(time.time())
        _write_json(STATUS_FILE, state)
        time.sleep(1)


def cmd_trace_agent(args):
    _setup_logging('trace-agent.log')
    cfg = _load_or_exit(args)
    if not config.apm_enabled(cfg):
        log.info('trace-agent not enabled. Set apm_config.enabled: true in datadog.yaml. Exiting.')
        return
    _require_api_key(cfg, 'trace-agent')
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from . import intake
    _write_json(TRACE_STATUS_FILE, {'pid': os.getpid(), 'started': int(time.time()),
                                    'receiver_port': config.apm_port(cfg)})
    intake.serve_traces(cfg)


def cmd_check(args):
    cfg = _load_or_exit(args)
    level = os.environ.get('DD_LOG_LEVEL', 'off').upper()
    logging.basicConfig(level=logging.CRITICAL + 1 if level == 'OFF' else level)
    from . import runner
    configs, errors = config.check_configs(cfg)
    for path, err in errors.items():
        if os.path.basename(os.path.dirname(path)) == args.name + '.d':
            print('\nError: invalid config for {}: {}'.format(args.name, err))
    try:
        instances = runner.instances_for(args.name, cfg, configs) if args.name in configs else []
    except runner.LoadError as e:
        print('\nError: could not load {}:\n* python: {}'.format(args.name, e))
        instances = []
    if not instances:
        print('Error: no valid check found', file=sys.stderr)
        return 255
    if len(instances) > 1:
        print('Multiple check instances found, running each of them')
    times, pause = (2, 1.0) if args.check_rate else (max(args.check_times, 1), args.pause / 1000.0)
    results = []
    for inst in instances:
        for i in range(times):
            inst.run()
            if i < times - 1 and pause:
                time.sleep(pause)
        if args.json:
            results.append({'aggregator': inst.aggregator_data(), 'runner': inst.stats(), 'inventories': {}})
        else:
            _print_check_text(inst)
    if args.json:
        print(json.dumps(results, indent=2))
    elif times < 2:
        print('Check has run only once, if some metrics are missing you can try again with --check-rate '
              'to see any other metric if available.')
    return 0


def _print_check_text(inst):
    data = inst.aggregator_data()
    print('=== Series ===')
    print(json.dumps({'series': data['metrics']}, indent=2))
    print('=== Service Checks ===')
    print(json.dumps(data['service_checks'], indent=2))
    for track, events in sorted(data['event_platform_events'].items()):
        print('=== {} ==='.format(EVENT_PLATFORM_NAMES.get(track, track)))
        print(json.dumps(events, indent=2))
    s = inst.stats()
    status = '[ERROR]' if s['LastError'] else ('[WARNING]' if s['LastWarnings'] else '[OK]')
    title = '{} ({})'.format(inst.name, inst.version)
    print('=========\nCollector\n=========\n\n  Running Checks\n  ==============\n')
    print('    {}\n    {}'.format(title, '-' * len(title)))
    print('      Instance ID: {} {}'.format(inst.id, status))
    print('      Configuration Source: {}'.format(inst.source))
    print('      Total Runs: {}'.format(s['TotalRuns']))
    print('      Metric Samples: Last Run: {}, Total: {}'.format(s['MetricSamples'], s['TotalMetricSamples']))
    print('      Events: Last Run: {}, Total: {}'.format(s['Events'], s['TotalEvents']))
    print('      Service Checks: Last Run: {}, Total: {}'.format(s['ServiceChecks'], s['TotalServiceChecks']))
    print('      Average Execution Time : {}ms'.format(s['AverageExecutionTime']))
    for warning in s['LastWarnings']:
        print('      Warning: {}'.format(warning))
    if s['LastError']:
        print('      Error: {}'.format(s['LastError']))
    print()


def cmd_configcheck(args):
    cfg = _load_or_exit(args)
    configs, errors = config.check_configs(cfg)
    if args.json:
        print(json.dumps({'configs': configs, 'errors': errors}, indent=2, default=str))
        return 0
    for name in sorted(configs):
        for conf in configs[name]:
            print('=== {} check ==='.format(name))
            print('Configuration provider: file')
            print('Configuration source: {}'.format(conf['source']))
            for inst in conf['instances']:
                print('Config for instance ID: {}'.format(config.instance_id(name, inst, conf['init_config'])))
                print(yaml.safe_dump(config.scrub(inst), default_flow_style=False).rstrip())
                print('~')
            print('Init Config:')
            print(yaml.safe_dump(config.scrub(conf['init_config']), default_flow_style=False).rstrip())
            if conf['logs']:
                print('Log Config:')
                print(yaml.safe_dump(config.scrub(conf['logs']), default_flow_style=False).rstrip())
            print('===\n')
    if errors:
        print('=== Configuration errors ===\n')
        for path, err in sorted(errors.items()):
            print('{}: {}\n'.format(path, err))
    return 0


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except PermissionError:
        return True
    except OSError:
        return False


def _read_state(path):
    try:
        with open(path) as f:
            state = json.load(f)
        return state if _alive(int(state['pid'])) else None
    except (OSError, ValueError, KeyError):
        return None


def cmd_status(args):
    cfg = _load_or_exit(args)
    state = _read_state(STATUS_FILE)
    if state is None:
        print('Error: could not reach agent: connection refused\nMake sure the agent is running before '
              'requesting the status and contact support if you continue having issues.', file=sys.stderr)
        return 255
    trace = _read_state(TRACE_STATUS_FILE)
    if args.json:
        print(json.dumps({'agent': state, 'apm': trace, 'config': config.scrub(cfg)}, indent=2, default=str))
        return 0
    key = str(cfg.get('api_key') or '')
    banner = 'Agent (v{})'.format(config.version())
    out = ['=' * len(banner), banner, '=' * len(banner), '',
           '  Status date: {}'.format(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())),
           '  Agent start: {}'.format(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(state['started']))),
           '  Pid: {}'.format(state['pid']), '  Python Version: {}'.format(sys.version.split()[0]),
           '  Agent flavor: agent (datadog-lab test stand-in)', '',
           '  Paths', '  =====', '    Config File: {}'.format(cfg['_path']), '    conf.d: {}'.format(cfg['_confd']),
           '    checks.d: {}'.format(cfg['_checksd']), '',
           '  Hostnames', '  =========', '    hostname: {}'.format(state['hostname']),
           '    host tags: {}'.format(', '.join(str(t) for t in cfg.get('tags') or [])), '',
           '=========', 'Forwarder', '=========', '',
           '  API Keys status', '  ===============',
           '    API key ending with {}: not validated (stand-in: nothing is sent)'.format(key[-5:]), '',
           '=========', 'Collector', '=========', '', '  Running Checks', '  ==============', '']
    for cid, s in sorted(state['checks'].items()):
        title = '{} ({})'.format(s['CheckName'], s['CheckVersion'])
        flag = '[ERROR]' if s['LastError'] else '[OK]'
        out += ['    ' + title, '    ' + '-' * len(title), '      Instance ID: {} {}'.format(cid, flag),
                '      Configuration Source: {}'.format(s['CheckConfigSource']),
                '      Total Runs: {}'.format(s['TotalRuns']),
                '      Metric Samples: Last Run: {}, Total: {}'.format(s['MetricSamples'], s['TotalMetricSamples']),
                '      Service Checks: Last Run: {}, Total: {}'.format(s['ServiceChecks'], s['TotalServiceChecks']),
                '      Average Execution Time : {}ms'.format(s['AverageExecutionTime'])]
        if s['LastError']:
            out.append('      Error: {}'.format(s['LastError']))
        out.append('')
    for name, err in sorted(state.get('errors', {}).items()):
        out += ['    Loading Errors', '    ==============', '      {}: {}'.format(name, err), '']
    out += ['=========', 'APM Agent', '=========', '',
            '  Status: {}'.format('Running' if trace else 'Not running or unreachable on localhost:{}'.format(
                config.apm_port(cfg))),
            '  Receiver (previous minute)', '  ==========================',
            '    receiver port: {}'.format(config.apm_port(cfg)), '',
            '=========', 'DogStatsD', '=========', '',
            '  Udp Packets: {}'.format(state.get('dogstatsd_packets', 0)),
            '  Port: {}'.format(config.dogstatsd_port(cfg)), '']
    print('\n'.join(out))
    return 0


def cmd_hostname(args):
    print(config.hostname(_load_or_exit(args)))
    return 0


def cmd_version(_args):
    print('Agent {} - Commit: standin - Serialization version: none - Go version: none '
          '(datadog-lab test stand-in)'.format(config.version()))
    return 0


def main(argv=None, prog='datadog-agent'):
    # Like the agent's persistent flags, -c/--cfgpath goes before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('-c', '--cfgpath', default=argparse.SUPPRESS,
                        help='path to directory containing datadog.yaml')
    parser = argparse.ArgumentParser(prog=prog, description='Datadog Agent (datadog-lab test stand-in)',
                                     parents=[common])
    sub = parser.add_subparsers(dest='command')
    sub_add = sub.add_parser
    sub.add_parser = lambda *a, **kw: sub_add(*a, parents=[common], **kw)
    p = sub.add_parser('run', help='Run the Agent')
    p.add_argument('-p', '--pidfile')
    sub.add_parser('trace-agent', help='Run the trace agent (the stand-in\'s trace-agent binary)')
    p = sub.add_parser('check', help='Run the specified check')
    p.add_argument('name')
    p.add_argument('--json', action='store_true')
    p.add_argument('--table', action='store_true')
    p.add_argument('-r', '--check-rate', action='store_true')
    p.add_argument('-t', '--check-times', type=int, default=1)
    p.add_argument('--pause', type=int, default=0)
    p.add_argument('-d', '--delay', type=int, default=100)
    p = sub.add_parser('configcheck', help='Print all configurations loaded & resolved of a running agent')
    p.add_argument('-v', '--verbose', action='store_true')
    p.add_argument('--json', action='store_true')
    p = sub.add_parser('status', help='Print the current status')
    p.add_argument('-v', '--verbose', action='store_true')
    p.add_argument('-j', '--json', action='store_true')
    sub.add_parser('hostname', help='Print the hostname used by the Agent')
    sub.add_parser('version', help='Print the version info')
    args = parser.parse_args(argv)
    args.cfgpath = getattr(args, 'cfgpath', None)
    commands = {'run': cmd_run, 'trace-agent': cmd_trace_agent, 'check': cmd_check, 'configcheck': cmd_configcheck,
                'status': cmd_status, 'hostname': cmd_hostname, 'version': cmd_version}
    if not args.command:
        parser.print_help()
        return 0
    return commands[args.command](args) or 0


threading.excepthook = lambda a: log.error('thread %s died: %s', a.thread.name, a.exc_value)
