# -*- coding: utf-8 -*-
"""The lab's checks in Datadog: read-only API calls, one result per check, keys never in a message.

run_checks(api, spec) asks Datadog once and returns a list of results, each a dict with
`check` (a short name), `passed` (bool), `line` (what was seen, or what to look at when it failed)
and `url` (where to look on the user's site). A 403 stops the round: waiting won't fix a key.
"""

from __future__ import absolute_import, division, print_function

import datetime
import json
import re
import time

try:
    from zoneinfo import ZoneInfo
except ImportError:  # Python < 3.9: times are printed in UTC
    ZoneInfo = None

try:
    from datadog_api_client import ApiClient, Configuration
    from datadog_api_client.exceptions import ApiException
    from datadog_api_client.v1.api.authentication_api import AuthenticationApi
    from datadog_api_client.v1.api.dashboards_api import DashboardsApi
    from datadog_api_client.v1.api.hosts_api import HostsApi
    from datadog_api_client.v1.api.metrics_api import MetricsApi
    from datadog_api_client.v1.api.monitors_api import MonitorsApi
    from datadog_api_client.v2.api.downtimes_api import DowntimesApi
    from datadog_api_client.v2.api.logs_api import LogsApi
    from datadog_api_client.v2.model.logs_list_request import LogsListRequest
    from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
    from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
    from datadog_api_client.v2.model.logs_sort import LogsSort
    HAS_CLIENT = True
except ImportError:  # the module reports it with missing_required_lib()
    HAS_CLIENT = False

# What an application key must be allowed to read for these checks (Datadog's scope names).
SCOPES = "hosts_read, metrics_read, timeseries_query, logs_read_data, monitors_read, dashboards_read, monitors_downtime"
# my_metric's gaps are measured over this many seconds at most (its line says why).
METRIC_WINDOW = 600
# Downtimes asked per page (Datadog's page[limit]; its default is 30).
PAGE = 100


class Forbidden(Exception):
    """Datadog answered 403: the message says which key to check (no key in it)."""


def app_url(site):
    """The web app of a Datadog site: app.datadoghq.com, app.datadoghq.eu, us3.datadoghq.com..."""
    return "https://%s" % (site if site.count(".") >= 2 else "app." + site)


class Api(object):
    """datadog-api-client's read endpoints, answering raw JSON (a model must not drop what it doesn't know)."""

    def __init__(self, api_url, api_key, app_key, request_timeout=30.0):
        config = Configuration(host=api_url.rstrip("/"), api_key={"apiKeyAuth": api_key, "appKeyAuth": app_key},
                               preload_content=False, request_timeout=request_timeout, enable_retry=False)
        self.api_url = config.host
        self.client = ApiClient(config)
        self.hosts = HostsApi(self.client)
        self.metrics = MetricsApi(self.client)
        self.logs = LogsApi(self.client)
        self.dashboards = DashboardsApi(self.client)
        self.monitors = MonitorsApi(self.client)
        self.downtimes = DowntimesApi(self.client)
        self.authentication = AuthenticationApi(self.client)

    def close(self):
        self.client.close()

    def call(self, what, endpoint, **kwargs):
        """The decoded answer of one call; Forbidden on 401/403, ApiException on any other error."""
        try:
            response = endpoint(**kwargs)
        except ApiException as err:
            if err.status in (401, 403):
                raise Forbidden(self._forbidden(what, err.status))
            raise
        return json.loads(response.data.decode("utf-8")) if response.data else None

    def _forbidden(self, what, status):
        try:
            self.authentication.validate()
        except ApiException:
            return ("Datadog answered %s to %s: it refused the API key (DD_API_KEY, or datadog_api_key): use an API "
                    "key of the organisation on this site." % (status, what))
        return ("Datadog answered %s to %s although the API key is valid: the application key (DD_APP_KEY, or "
                "datadog_app_key) must be allowed to read: %s." % (status, what, SCOPES))

    def query(self, query, since, until):
        answer = self.call("GET /api/v1/query " + query, self.metrics.query_metrics,
                           _from=int(since), to=int(until), query=query)
        return answer.get("series") or []


def _result(check, passed, line, url=""):
    return {"check": check, "passed": bool(passed), "line": line, "url": url}


def _points(series):
    return sorted(p[0] / 1000.0 for s in series for p in s.get("pointlist") or [] if p[1] is not None)


def check_host(api, spec, since, web):
    url = "%s/infrastructure/map?filter=host:%s" % (web, spec["host"])
    hosts = api.call("GET /api/v1/hosts", api.hosts.list_hosts, filter=spec["host"], _from=int(since))
    host = next((h for h in hosts.get("host_list") or [] if spec["host"] in (h.get("name"), h.get("host_name"))), None)
    if host is None:
        return _result("host", False, "host %s has not reported since %s: is datadog-agent running on the VM "
                       "(systemctl status datadog-agent; datadog-agent status)?" % (spec["host"], _ago(since)), url)
    tags = set(t for source in (host.get("tags_by_source") or {}).values() for t in source)
    missing = [t for t in spec["host_tags"] if t not in tags]
    if missing:
        return _result("host", False, "host %s reports without the tags %s: check `tags` in "
                       "/etc/datadog-agent/datadog.yaml (lab_host_tags)" % (spec["host"], ", ".join(missing)), url)
    return _result("host", True, "host %s reports, tagged %s" % (spec["host"], ", ".join(spec["host_tags"])), url)


def check_custom_metric(api, spec, since, until, web):
    """Points of my_metric, about custom_interval apart, over the last METRIC_WINDOW seconds at most: Datadog
    rolls points up by the time frame asked (20 s buckets for an hour, 5 min for a day: Datadog's rollup
    docs), and a bucket wider than the interval hides it. A bucket's width still blurs each gap by up to
    one bucket (the series' `interval`), hence the tolerance."""
    metric, tag, interval = spec["custom_metric"], spec["custom_metric_tag"], spec["custom_interval"]
    query = "avg:%s{host:%s,%s}" % (metric, spec["host"], tag)
    url = "%s/metric/explorer?exp_metric=%s" % (web, metric)
    since = max(since, until - METRIC_WINDOW)
    series = api.query(query, since, until)
    points = _points(series)
    if len(points) < 2:
        return _result("my_metric", False, "%s: %d point(s) since %s, 2 needed: is the custom_random check "
                       "running (datadog-agent check custom_random)?" % (query, len(points), _ago(since)), url)
    gaps = sorted(b - a for a, b in zip(points, points[1:]))
    median = gaps[len(gaps) // 2]
    bucket = max([s.get("interval") or 0 for s in series] + [0])
    if abs(median - interval) > max(interval / 3.0, bucket):
        return _result("my_metric", False, "%s: points %.0f s apart, not about %d s: check min_collection_interval "
                       "in conf.d/custom_random.d/conf.yaml" % (query, median, interval), url)
    return _result("my_metric", True, "%s: %d points, about %.0f s apart" % (query, len(points), median), url)


def check_postgres(api, spec, since, until, web):
    scope = "host:%s,db:%s,table:%s" % (spec["host"], spec["database"], spec["table"])
    url = "%s/dash/integration/postgres" % web
    seen = []
    for metric in ("postgresql.live_rows", "postgresql.heap_blocks_read"):
        series = api.query("avg:%s{%s}" % (metric, scope), since, until)
        if not _points(series):
            return _result("postgres", False, "no %s{%s} since %s: is the Postgres check logging in "
                           "(datadog-agent check postgres) and is PostgreSQL up (systemctl status postgresql)?"
                           % (metric, scope, _ago(since)), url)
        seen.append(metric)
    return _result("postgres", True, "Postgres integration reports %s for %s.%s" % (
        " and ".join(seen), spec["database"], spec["table"]), url)


def check_apm(api, spec, since, until, web):
    query = "sum:trace.flask.request.hits{service:%s,env:%s} by {resource_name}.as_count()" % (
        spec["service"], spec["env"])
    url = "%s/apm/services/%s/operations/flask.request/resources?env=%s" % (web, spec["service"], spec["env"])
    hits = {}
    for serie in api.query(query, since, until):
        name = dict(t.split(":", 1) for t in serie.get("tag_set") or [] if ":" in t).get("resource_name")
        hits[name] = hits.get(name, 0) + sum(p[1] or 0 for p in serie.get("pointlist") or [])
    wanted = [(route, _resource_tag(route)) for route in spec["routes"]]
    missing = [route for route, tag in wanted if hits.get(tag, 0) <= 0]
    if missing:
        return _result("apm", False, "no trace.flask.request.hits for %s (service %s, env %s) since %s: is the app "
                       "up (systemctl status %s), did traffic run (playbooks/traffic.yml), does the trace agent "
                       "listen (datadog-agent status, APM Agent)?" % (", ".join(missing), spec["service"],
                                                                      spec["env"], _ago(since), spec["service"]), url)
    counts = ", ".join("%s %d" % (route, hits[tag]) for route, tag in wanted)
    return _result("apm", True, "trace.flask.request.hits for %s/%s: %s" % (spec["service"], spec["env"], counts), url)


def _sum(series):
    return sum(p[1] or 0 for serie in series for p in serie.get("pointlist") or [])


def check_dbm(api, spec, since, until, web):
    """Database Monitoring's query metrics for the lab's database: Datadog derives postgresql.queries.count from
    the rows of pg_stat_statements the agent sends (dbm-metrics), per query_signature."""
    url = "%s/databases/queries?host=%s" % (web, spec["host"])
    if not spec["dbm"]:
        return _result("dbm", True, "Database Monitoring is off (dbm in the postgres check): no query metrics "
                       "expected", url)
    query = "sum:postgresql.queries.count{host:%s,db:%s} by {query_signature}.as_count()" % (
        spec["host"], spec["database"])
    signatures = [s for s in api.query(query, since, until) if _sum([s]) > 0]
    if not signatures:
        return _result("dbm", False, "no postgresql.queries.count for host %s, db:%s since %s: is `dbm: true` in "
                       "conf.d/postgres.d/conf.yaml, is pg_stat_statements preloaded (SHOW "
                       "shared_preload_libraries), and does `datadog-agent check postgres` run without an "
                       "\"Unable to collect statement metrics\" warning?" % (spec["host"], spec["database"],
                                                                              _ago(since)), url)
    return _result("dbm", True, "postgresql.queries.count for db:%s: %d query signatures, %d calls" % (
        spec["database"], len(signatures), _sum(signatures)), url)


def check_db_spans(api, spec, since, until, web):
    """The app's queries as APM spans (psycopg's postgres.query), the spans Database Monitoring links to."""
    query = "sum:trace.postgres.query.hits{service:%s,env:%s}.as_count()" % (spec["service"], spec["env"])
    url = "%s/apm/services/%s/operations/postgres.query/resources?env=%s" % (web, spec["service"], spec["env"])
    hits = _sum(api.query(query, since, until))
    if hits <= 0:
        return _result("db_spans", False, "no trace.postgres.query.hits (service %s, env %s) since %s: does "
                       "GET /api/db answer (curl 127.0.0.1:PORT/api/db), did traffic run (playbooks/traffic.yml), "
                       "and is psycopg traced (ddtrace-run in the app's unit)?" % (
                           spec["service"], spec["env"], _ago(since)), url)
    return _result("db_spans", True, "trace.postgres.query.hits for %s/%s: %d" % (spec["service"], spec["env"], hits),
                   url)


def check_runtime(api, spec, since, until, web):
    """ddtrace's runtime metrics (DogStatsD, to the agent): runtime.python.* tagged with the app's service."""
    url = "%s/apm/services/%s/operations/flask.request?env=%s&dependencyMap=runtime" % (
        web, spec["service"], spec["env"])
    if not spec["runtime"]:
        return _result("runtime", True, "runtime metrics are off (DD_RUNTIME_METRICS_ENABLED): none expected", url)
    seen = []
    for metric in ("runtime.python.mem.rss", "runtime.python.cpu.percent"):
        query = "avg:%s{service:%s,env:%s}" % (metric, spec["service"], spec["env"])
        if not _points(api.query(query, since, until)):
            return _result("runtime", False, "no %s since %s: is DD_RUNTIME_METRICS_ENABLED=true in the app's unit "
                           "and does DogStatsD listen (datadog-agent status, DogStatsD)?" % (query, _ago(since)), url)
        seen.append(metric)
    return _result("runtime", True, "%s for %s/%s" % (" and ".join(seen), spec["service"], spec["env"]), url)


def check_logs(api, spec, since, web):
    query = "service:%s host:%s" % (spec["service"], spec["host"])
    url = "%s/logs?query=%s" % (web, query.replace(" ", "%20"))
    if not spec["logs"]:
        return _result("logs", True, "log collection is off (logs_enabled): no logs expected", url)
    # filter.from "supports date math and regular timestamps (milliseconds)" (LogsQueryFilter): milliseconds.
    body = LogsListRequest(filter=LogsQueryFilter(query=query, _from=str(int(since * 1000)), to="now"),
                           page=LogsListRequestPage(limit=50), sort=LogsSort.TIMESTAMP_DESCENDING)
    logs = api.call("POST /api/v2/logs/events/search", api.logs.list_logs, body=body).get("data") or []
    traced = [log for log in logs if ((log.get("attributes") or {}).get("attributes") or {}).get("dd", {}).get("trace_id")]
    if not logs:
        return _result("logs", False, "no logs for %s since %s: is logs_enabled true and the journald source "
                       "configured (datadog-agent configcheck)?" % (query, _ago(since)), url)
    if not traced:
        return _result("logs", False, "%d logs for %s, none with dd.trace_id: is DD_LOGS_INJECTION on in the "
                       "app's unit?" % (len(logs), query), url)
    return _result("logs", True, "%d logs for %s, %d carrying trace ids" % (len(logs), query, len(traced)), url)


def check_resources(api, spec, web):
    mark = "[managed-by:%s" % spec["managed_by"]
    dashboards = [d for d in api.call("GET /api/v1/dashboard", api.dashboards.list_dashboards).get("dashboards") or []
                  if mark in (d.get("description") or "")]
    monitors = api.call("GET /api/v1/monitor", api.monitors.list_monitors,
                        monitor_tags="managed-by:%s" % spec["managed_by"]) or []
    downtimes = _marked_downtimes(api, spec["managed_by"])
    results = []
    expected = spec["expected"]
    hint = "run playbooks/resources.yml (DD_APP_KEY set)"
    found = ["%s %s%s" % (d.get("title"), web, d.get("url")) for d in dashboards]
    results.append(_result("dashboards", len(dashboards) >= expected["dashboards"], "%d of %d dashboards: %s" % (
        len(dashboards), expected["dashboards"], "; ".join(found) or hint), "%s/dashboard/lists" % web))
    found = ["%s [%s] %s/monitors/%s" % (m.get("name"), m.get("overall_state"), web, m.get("id")) for m in monitors]
    results.append(_result("monitor", len(monitors) >= expected["monitors"], "%d of %d monitors: %s" % (
        len(monitors), expected["monitors"], "; ".join(found) or hint), "%s/monitors/manage" % web))
    results.append(_downtimes_line(downtimes, expected["downtimes"], hint, web))
    return results


def _marked_downtimes(api, managed_by):
    """Every downtime carrying the lab's mark, as {name, status, attributes, id}, whatever its status.
    Not `current_only=true`: that lists only the downtimes active when the request is made (Datadog's API
    reference, List downtimes), and the lab's are scheduled through working hours."""
    marker = re.compile(r"\[managed-by:%s downtime:([^\]]*)\]" % re.escape(managed_by))
    found, offset = [], 0
    while True:
        page = api.call("GET /api/v2/downtime", api.downtimes.list_downtimes, page_offset=offset, page_limit=PAGE)
        batch = (page or {}).get("data") or []
        for downtime in batch:
            attributes = downtime.get("attributes") or {}
            match = marker.search(attributes.get("message") or "")
            if match:
                found.append({"name": match.group(1), "status": attributes.get("status"),
                              "attributes": attributes, "id": downtime.get("id")})
        offset += len(batch)
        if len(batch) < PAGE:
            return found


def _downtimes_line(downtimes, expected, hint, web):
    """Live downtimes are active (muting now) or scheduled (muting later); canceled and ended ones are gone."""
    live = dict((d["name"], d) for d in downtimes if d["status"] in ("active", "scheduled"))
    gone = dict((d["name"], d) for d in downtimes if d["name"] not in live)
    found = ["%s (%s) %s/monitors/downtimes?id=%s" % (name, _downtime_when(d), web, d["id"])
             for name, d in sorted(live.items())]
    passed = len(live) >= expected
    if not passed:
        found += ["%s is %s" % (name, d["status"]) for name, d in sorted(gone.items())] + [hint]
    text = "; ".join(found)
    return _result("downtimes", passed, "%d of %d downtimes: %s" % (len(live), expected, text),
                   "%s/monitors/downtimes" % web)


def _downtime_when(downtime):
    """"scheduled, next <start>" or "active, until <end>", from the schedule Datadog answers: a recurring
    schedule's current_downtime is the period in progress or the next one; a one-time schedule has start
    and end."""
    attributes = downtime["attributes"]
    schedule = attributes.get("schedule") or {}
    period = schedule.get("current_downtime") or schedule
    zone = schedule.get("timezone") or attributes.get("display_timezone") or "UTC"
    if downtime["status"] == "active":
        return "active, until %s" % (_local_time(period.get("end"), zone) if period.get("end") else "canceled")
    return "scheduled, next %s" % _local_time(period.get("start"), zone)


def _local_time(text, zone):
    """An ISO 8601 time with its offset as "YYYY-MM-DD HH:MM <zone>" (in UTC without zoneinfo)."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$", text or "")
    if not match:
        return text or "?"
    instant = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M")
    offset = match.group(2) or "Z"
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        instant -= sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[-2:]))
    if ZoneInfo is None or zone == "UTC":
        return instant.strftime("%Y-%m-%d %H:%M UTC")
    try:
        utc = instant.replace(tzinfo=ZoneInfo("UTC"))
        return utc.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M ") + zone
    except Exception:  # noqa: BLE001 - a zone this Python doesn't know: UTC
        return instant.strftime("%Y-%m-%d %H:%M UTC")


ALL_CHECKS = ("host", "my_metric", "postgres", "dbm", "apm", "db_spans", "runtime", "logs", "resources")


def run_checks(api, spec, now=None):
    """One round of every check. spec: host, host_tags, custom_metric, custom_metric_tag, custom_interval,
    database, table, dbm, service, env, routes, runtime, logs, managed_by, expected {dashboards, monitors, downtimes},
    site, since (epoch seconds: only data newer than this counts), checks (names out of ALL_CHECKS; all
    when empty; "resources" covers the dashboards, monitor and downtimes lines)."""
    until = now or time.time()
    since = spec["since"]
    web = app_url(spec["site"])
    rounds = [
        ("host", lambda: check_host(api, spec, since, web)),
        ("my_metric", lambda: check_custom_metric(api, spec, since, until, web)),
        ("postgres", lambda: check_postgres(api, spec, since, until, web)),
        ("dbm", lambda: check_dbm(api, spec, since, until, web)),
        ("apm", lambda: check_apm(api, spec, since, until, web)),
        ("db_spans", lambda: check_db_spans(api, spec, since, until, web)),
        ("runtime", lambda: check_runtime(api, spec, since, until, web)),
        ("logs", lambda: check_logs(api, spec, since, web)),
    ]
    wanted = spec.get("checks") or ALL_CHECKS
    rounds = [(name, check) for name, check in rounds if name in wanted]
    results = []
    for name, check in rounds:
        try:
            results.append(check())
        except Forbidden as err:
            return results + [_result(name, False, str(err))], True
        except ApiException as err:
            results.append(_result(name, False, "Datadog answered %s: %s" % (err.status, _reason(err))))
        except Exception as err:  # noqa: BLE001 - one unreachable answer fails its line, the round goes on
            results.append(_result(name, False, "no answer from %s (%s)" % (api.api_url, type(err).__name__)))
    if "resources" not in wanted:
        return results, False
    try:
        results.extend(check_resources(api, spec, web))
    except Forbidden as err:
        return results + [_result("resources", False, str(err))], True
    except Exception as err:  # noqa: BLE001
        results.append(_result("resources", False, "no answer about dashboards, monitors, downtimes (%s)"
                               % type(err).__name__))
    return results, False


def _resource_tag(route):
    return "".join(c if c.isalnum() or c in "_.:/-" else "_" for c in route.lower())


def _iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _ago(epoch):
    return "%s (%d s ago)" % (_iso(epoch), max(0, time.time() - epoch))


def _reason(err):
    body = err.body.decode("utf-8", "replace") if isinstance(err.body, bytes) else str(err.body or "")
    try:
        errors = json.loads(body).get("errors")
        return "; ".join(str(e) for e in errors)[:500]
    except (ValueError, AttributeError, TypeError):
        return body.strip()[:300] or str(err.reason)
