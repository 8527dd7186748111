"""Stand-in for the Datadog Agent's configuration loading: datadog.yaml, DD_* overrides, conf.d."""
import hashlib
import os

import yaml

INSTALL_DIR = '/opt/datadog-agent'
CONF_DIR = '/etc/datadog-agent'
RUN_DIR = INSTALL_DIR + '/run'
LOG_DIR = '/var/log/datadog'
RECORD_DIR = LOG_DIR + '/standin'
DEFAULT_INTERVAL = 15

# Environment variables the real agent reads instead of datadog.yaml keys (the ones the lab uses).
ENV_OVERRIDES = {
    'DD_API_KEY': ('api_key',),
    'DD_SITE': ('site',),
    'DD_HOSTNAME': ('hostname',),
    'DD_APM_ENABLED': ('apm_config', 'enabled'),
    'DD_APM_RECEIVER_PORT': ('apm_config', 'receiver_port'),
    'DD_DOGSTATSD_PORT': ('dogstatsd_port',),
}
# Keys whose values the real agent's scrubber hides in configcheck and status output.
SECRET_KEYS = ('password', 'pwd', 'pass', 'passwd', 'api_key', 'app_key', 'token', 'secret', 'private_key')


def version():
    """The package version build.sh wrote next to this package ('unknown' in the source tree)."""
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'VERSION')) as f:
            return f.read().strip()
    except OSError:
        return 'unknown'


def config_file(cfgpath=None):
    path = cfgpath or CONF_DIR
    return os.path.join(path, 'datadog.yaml') if os.path.isdir(path) else path


def load(cfgpath=None):
    """datadog.yaml as the agent sees it, DD_* environment variables applied."""
    path = config_file(cfgpath)
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError('{}: the top level must be a mapping'.format(path))
    for var, keys in ENV_OVERRIDES.items():
        if os.environ.get(var):
            node = cfg
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = os.environ[var]
    cfg['_path'] = path
    cfg['_confd'] = cfg.get('confd_path') or os.path.join(os.path.dirname(path), 'conf.d')
    cfg['_checksd'] = cfg.get('additional_checksd') or os.path.join(os.path.dirname(path), 'checks.d')
    return cfg


def truthy(value, default=False):
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ('1', 'true', 'yes', 'on')
    return bool(value)


def hostname(cfg):
    import socket

    return cfg.get('hostname') or socket.getfqdn()


def apm_enabled(cfg):
    return truthy((cfg.get('apm_config') or {}).get('enabled'), default=True)


def apm_port(cfg):
    return int((cfg.get('apm_config') or {}).get('receiver_port') or 8126)


def dogstatsd_port(cfg):
    return int(cfg.get('dogstatsd_port') or 8125)


def instance_id(name, instance, init_config):
    digest = hashlib.sha256(
        yaml.safe_dump([instance, init_config], sort_keys=True).encode('utf-8')
    ).hexdigest()
    return '{}:{}'.format(name, digest[:16])


def interval(instance, init_config):
    return int(instance.get('min_collection_interval') or (init_config or {}).get('min_collection_interval')
               or DEFAULT_INTERVAL)


def check_configs(cfg):
    """Every check configuration under conf.d, as the real agent's file provider finds them.

    Returns (configs, errors): configs maps a check name to a list of dicts with keys source,
    init_config, instances, logs; errors maps a file to its problem.
    """
    confd = cfg['_confd']
    found, defaults, errors = {}, {}, {}

    def add(target, name, path):
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
            if not isinstance(data, dict):
                raise ValueError('the top level must be a mapping')
            instances = data.get('instances') or []
            if not isinstance(instances, list) or not all(isinstance(i, dict) for i in instances):
                raise ValueError('instances must be a list of mappings')
        except Exception as e:  # noqa: BLE001 - reported like the agent's configcheck does
            errors[path] = str(e)
            return
        if not instances and not data.get('logs'):
            errors[path] = 'Configuration file contains no valid instances'
            return
        target.setdefault(name, []).append({
            'source': 'file:' + path,
            'init_config': data.get('init_config') or {},
            'instances': instances,
            'logs': data.get('logs'),
        })

    if not os.path.isdir(confd):
        return {}, {}
    for entry in sorted(os.listdir(confd)):
        path = os.path.join(confd, entry)
        if entry.endswith('.d') and os.path.isdir(path):
            name = entry[:-2]
            for fname in sorted(os.listdir(path)):
                fpath = os.path.join(path, fname)
                if fname in ('auto_conf.yaml', 'metrics.yaml'):
                    continue
                if fname.endswith(('.yaml', '.yml')):
                    add(found, name, fpath)
                elif fname.endswith('.yaml.default'):
                    add(defaults, name, fpath)
        elif entry.endswith(('.yaml', '.yml')) and os.path.isfile(path):
            add(found, entry.rsplit('.', 1)[0], path)
        elif entry.endswith('.yaml.default') and os.path.isfile(path):
            add(defaults, entry[: -len('.yaml.default')], path)
    for name, confs in defaults.items():
        found.setdefault(name, confs)
    return found, errors


def scrub(value):
    """A copy of a config with secret values replaced the way the agent prints them."""
    if isinstance(value, dict):
        return {
            k: ('********' if isinstance(k, str) and any(s in k.lower() for s in SECRET_KEYS) and v
                else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
