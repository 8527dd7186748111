"""Stand-in for Datadog's intake and its read side in tests: what agents send, and how it reads back.

Intake (API key only, as Datadog's intake; bodies checked with datadog-api-client's models where
one exists, 400 naming the field otherwise):
    POST /api/v2/series          MetricPayload (JSON): gauges, counts, rates of the agent's checks
    POST /api/v1/check_run       a list of ServiceCheck
    POST /intake/                host metadata: internalHostname, host-tags {system: [...]}, meta
    POST /api/v0.2/stats         the trace-agent's StatsPayload (msgpack): becomes trace.<name>.hits,
                                 .errors, .duration series, as Datadog derives them
    POST /api/v2/dbmmetrics      Database Monitoring's dbm-metrics events (a list): each postgres_rows
                                 row becomes postgresql.queries.count (calls), .time (total_exec_time
                                 or total_time, in ns) and .rows, tagged query_signature, db, user and
                                 the event's tags, as Datadog derives them
    POST /api/v2/databasequery   its dbm-samples events (plans), kept as received
    POST /api/v2/logs            HTTPLog (a list of log items); a JSON message becomes attributes, and
                                 a text line's dd.trace_id=... dd.span_id=... become attributes dd.*
                                 (as Datadog's Python log pipeline parses them)
Read side (API and application key, Datadog's answer shapes):
    GET  /api/v1/hosts?filter=&from=        HostListResponse
    GET  /api/v1/query?from=&to=&query=     MetricsQueryResponse; queries of the form
                                 AGG:METRIC{tag:value,...} [by {key,...}] [.as_count()], from and to in
                                 seconds, points rolled up as Datadog's API does by default (ROLLUP_INTERVALS)
    POST /api/v2/logs/events/search         LogsListResponse; queries of space-separated
                                 key:value terms (service, host, source, status, a tag, @attribute:* )
A metric monitor's overall_state follows its query over the series received (OK, Warn, Alert, No Data).
"""

import datetime
import gzip
import json
import re
import time
import uuid

from datadog_api_client import Configuration
from datadog_api_client.exceptions import OpenApiException
from datadog_api_client.model_utils import validate_and_convert_types
from datadog_api_client.v1.model.service_checks import ServiceChecks
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.metric_payload import MetricPayload

DD_ATTRIBUTE = re.compile(r"\bdd\.(service|env|version|trace_id|span_id)=([^\s\]]*)")
INTAKE_TYPES = {0: "gauge", 1: "count", 2: "rate", 3: "gauge"}  # MetricIntakeType: unspecified, count, rate, gauge
QUERY = re.compile(r"^(?P<agg>avg|sum|min|max):(?P<metric>[\w.]+)\{(?P<scope>[^}]*)\}"
                   r"(?:\s*by\s*\{(?P<by>[^}]*)\})?(?P<count>\.as_count\(\))?$")
MONITOR_QUERY = re.compile(r"^(?P<agg>avg|sum|min|max)\(last_(?P<n>[0-9]+)(?P<unit>[mh])\):(?P<inner>.+?)\s*"
                           r"(?P<op>>=|<=|>|<)\s*(?P<threshold>-?[0-9.]+)$")


def empty():
    return {"series": {}, "hosts": {}, "logs": [], "service_checks": [], "dbm_samples": []}


def _checked(model, body):
    try:
        validate_and_convert_types(body, (model,), ["body"], True, True, Configuration())
    except (OpenApiException, TypeError, ValueError) as err:
        return [str(err)]
    return []


def _tag_value(tags, key):
    for tag in tags:
        if tag.startswith(key + ":"):
            return tag[len(key) + 1:]
    return None


def resource_tag(resource):
    """Datadog's normalised resource_name tag value: lower case, spaces as underscores."""
    return re.sub(r"[^a-z0-9_.:/\-]", "_", resource.lower())


class Intake:
    """What the fake's intake received, and the read endpoints answered from it."""

    def __init__(self):
        self.data = empty()

    # ---- intake ------------------------------------------------------------------------------

    def _add_point(self, metric, mtype, tags, host, timestamp, value, interval=0):
        key = json.dumps([metric, sorted(set(tags)), host])
        serie = self.data["series"].setdefault(key, {"metric": metric, "type": mtype, "tags": sorted(set(tags)),
                                                      "host": host, "interval": interval, "points": []})
        serie["points"].append([float(timestamp), float(value)])
        self._seen(host, timestamp)

    def _seen(self, host, timestamp):
        # A host reports when its data arrives: a point stamped ahead (a trace-stats bucket's end, up to
        # 10 s after its flush) does not make it report in the future.
        timestamp = min(timestamp, time.time())
        if host:
            entry = self.data["hosts"].setdefault(host, {"name": host, "host_tags": [], "meta": {},
                                                         "first_seen": timestamp, "apps": ["agent"]})
            entry["last_reported_time"] = max(entry.get("last_reported_time", 0), int(timestamp))

    def series(self, body):
        found = _checked(MetricPayload, body)
        for i, serie in enumerate(body.get("series") or [] if isinstance(body, dict) else []):
            for j, point in enumerate(serie.get("points") or []):
                if not all(isinstance(point.get(k), (int, float)) and not isinstance(point.get(k), bool)
                           for k in ("timestamp", "value")):
                    found.append("body.series[%d].points[%d]: timestamp and value must be numbers" % (i, j))
        if found:
            return found
        for serie in body["series"]:
            host = next((r.get("name") for r in serie.get("resources") or [] if r.get("type") == "host"), None)
            for point in serie["points"]:
                self._add_point(serie["metric"], INTAKE_TYPES.get(serie.get("type", 0), "gauge"),
                                serie.get("tags") or [], host, point["timestamp"], point["value"],
                                serie.get("interval", 0))
        return []

    def check_run(self, body):
        found = _checked(ServiceChecks, body)
        if found:
            return found
        for check in body:
            self.data["service_checks"].append(dict(check))
            self._seen(check.get("host_name"), check.get("timestamp") or time.time())
        return []

    def host_metadata(self, body):
        if not isinstance(body, dict) or not body.get("internalHostname"):
            return ["body.internalHostname: a host name is required"]
        tags = (body.get("host-tags") or {}).get("system") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return ["body.host-tags.system: a list of key:value strings is required"]
        host = body["internalHostname"]
        self._seen(host, time.time())
        self.data["hosts"][host].update({"host_tags": tags, "meta": body.get("meta") or {},
                                         "agent_version": body.get("agentVersion")})
        return []

    def trace_stats(self, body):
        """StatsPayload: {AgentHostname, AgentEnv, Stats: [ClientStatsPayload {Hostname, Env, Version,
        Stats: [ClientStatsBucket {Start, Duration, Stats: [ClientGroupedStats]}]}]}."""
        if not isinstance(body, dict) or not isinstance(body.get("Stats"), list):
            return ["body.Stats: a list of client stats payloads is required"]
        for client in body["Stats"]:
            host = client.get("Hostname") or body.get("AgentHostname")
            env = client.get("Env") or body.get("AgentEnv")
            for bucket in client.get("Stats") or []:
                at = (bucket["Start"] + bucket["Duration"]) / 1e9
                for group in bucket.get("Stats") or []:
                    tags = ["service:%s" % group["Service"], "env:%s" % env,
                            "resource_name:%s" % resource_tag(group["Resource"])]
                    if group.get("HTTPStatusCode"):
                        tags.append("http.status_code:%d" % group["HTTPStatusCode"])
                    if client.get("Version"):
                        tags.append("version:%s" % client["Version"])
                    base = "trace.%s" % group["Name"]
                    self._add_point(base + ".hits", "count", tags, host, at, group.get("Hits", 0))
                    self._add_point(base + ".errors", "count", tags, host, at, group.get("Errors", 0))
                    self._add_point(base + ".duration", "gauge", tags, host, at, group.get("Duration", 0) / 1e9)
        return []

    def dbm_metrics(self, body):
        if not isinstance(body, list) or not all(isinstance(e, dict) for e in body):
            return ["body: a list of dbm-metrics events is required"]
        for i, event in enumerate(body):
            for key in ("host", "timestamp", "postgres_rows"):
                if key not in event:
                    return ["body[%d].%s: required" % (i, key)]
            for j, row in enumerate(event["postgres_rows"]):
                missing = [k for k in ("query_signature", "datname", "rolname", "calls", "rows") if k not in row]
                if missing:
                    return ["body[%d].postgres_rows[%d].%s: required" % (i, j, missing[0])]
        for event in body:
            at = event["timestamp"] / 1000.0
            for row in event["postgres_rows"]:
                tags = list(event.get("tags") or []) + [
                    "query_signature:%s" % row["query_signature"], "db:%s" % row["datname"],
                    "user:%s" % row["rolname"]]
                millis = row.get("total_exec_time", row.get("total_time")) or 0
                self._add_point("postgresql.queries.count", "count", tags, event["host"], at, row["calls"])
                self._add_point("postgresql.queries.time", "count", tags, event["host"], at, millis * 1e6)
                self._add_point("postgresql.queries.rows", "count", tags, event["host"], at, row["rows"])
        return []

    def dbm_samples(self, body):
        if not isinstance(body, list) or not all(isinstance(e, dict) and e.get("dbm_type") for e in body):
            return ["body: a list of dbm-samples events (each with dbm_type) is required"]
        self.data["dbm_samples"].extend(body)
        return []

    def logs(self, body):
        found = _checked(HTTPLog, body)
        if found:
            return found
        now = datetime.datetime.now(datetime.timezone.utc)
        for item in body:
            attributes = {}
            message = item.get("message", "")
            try:
                parsed = json.loads(message)
                if isinstance(parsed, dict):
                    attributes = parsed
                    message = str(parsed.get("message", message))
            except ValueError:
                # Datadog's Python log pipeline: the dd.* correlation attributes of a text line.
                dd = {k: v for k, v in DD_ATTRIBUTE.findall(message) if v and v != "0"}
                if dd:
                    attributes = {"dd": dd}
            self.data["logs"].append({
                "id": uuid.uuid4().hex, "type": "log",
                "attributes": {"message": message, "service": item.get("service"), "host": item.get("hostname"),
                               "status": attributes.get("status", "info"),
                               "tags": [t for t in (item.get("ddtags") or "").split(",") if t]
                               + ["source:%s" % item.get("ddsource", "")],
                               "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                               "attributes": attributes},
            })
            self._seen(item.get("hostname"), now.timestamp())
        return []

    # ---- read side ---------------------------------------------------------------------------

    def list_hosts(self, query):
        since = int(query.get("from", 0))
        wanted = query.get("filter", "")
        hosts = []
        for number, entry in enumerate(sorted(self.data["hosts"].values(), key=lambda h: h["name"])):
            if entry.get("last_reported_time", 0) < since:
                continue
            if wanted and wanted not in entry["name"] and wanted not in entry["host_tags"]:
                continue
            hosts.append({
                "name": entry["name"], "host_name": entry["name"], "id": 1000 + number, "aliases": [entry["name"]],
                "apps": entry["apps"], "sources": ["agent"], "up": True, "is_muted": False, "mute_timeout": None,
                "last_reported_time": entry.get("last_reported_time", 0),
                "tags_by_source": {"Datadog": ["host:%s" % entry["name"]] + entry["host_tags"]},
                "meta": {"agent_version": entry.get("agent_version")}, "metrics": {},
            })
        return {"host_list": hosts, "total_matching": len(hosts), "total_returned": len(hosts)}

    def query(self, params):
        text = params.get("query", "").strip()
        start, end = int(params.get("from", 0)), int(params.get("to", time.time()))
        match = QUERY.match(text)
        if not match:
            return None
        scope = [t.strip() for t in match["scope"].split(",") if t.strip() and t.strip() != "*"]
        by = [k.strip() for k in (match["by"] or "").split(",") if k.strip()]
        interval = rollup_interval(end - start)
        # Each series is first rolled up in time (avg, or sum for .as_count()), then aggregated in space.
        in_time = (lambda v: sum(v)) if match["count"] else (lambda v: sum(v) / len(v))
        groups = {}
        for serie in self.data["series"].values():
            if serie["metric"] != match["metric"]:
                continue
            tags = serie["tags"] + (["host:%s" % serie["host"]] if serie["host"] else [])
            if not all(t in tags for t in scope):
                continue
            group = tuple("%s:%s" % (k, _tag_value(tags, k)) for k in by)
            if any(g.endswith(":None") for g in group):
                continue
            buckets = {}
            for at, value in serie["points"]:
                if start <= at <= end:
                    buckets.setdefault(int(at) // interval * interval, []).append(value)
            for at, values in buckets.items():
                groups.setdefault(group, {}).setdefault(at, []).append(in_time(values))
        series = []
        for group, by_time in sorted(groups.items()):
            aggregate = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}[match["agg"]]
            pointlist = [[at * 1000.0, float(aggregate(values))] for at, values in sorted(by_time.items())]
            scope_text = ",".join(list(scope) + list(group)) or "*"
            series.append({
                "metric": match["metric"], "display_name": match["metric"], "expression": text, "scope": scope_text,
                "tag_set": list(group), "pointlist": pointlist, "length": len(pointlist),
                "start": pointlist[0][0], "end": pointlist[-1][0], "interval": interval, "aggr": match["agg"],
                "unit": None, "attributes": {},
            })
        return {"status": "ok", "res_type": "time_series", "resp_version": 1, "query": text, "message": "",
                "from_date": start * 1000, "to_date": end * 1000, "group_by": by, "series": series}

    def search_logs(self, body):
        body = body or {}
        flt = body.get("filter") or {}
        terms = [t for t in (flt.get("query") or "*").split() if t != "*"]
        # Datadog's defaults: from "now-15m", to "now" (datadog-api-client's LogsQueryFilter).
        start, end = _log_time(flt.get("from") or "now-15m", 0), _log_time(flt.get("to") or "now", 0) + 1
        limit = int((body.get("page") or {}).get("limit", 10))
        found = [log for log in self.data["logs"] if start <= _log_time(log["attributes"]["timestamp"], 0) <= end
                 and all(_log_matches(log["attributes"], term) for term in terms)]
        found = sorted(found, key=lambda log: log["attributes"]["timestamp"], reverse=True)[:limit]
        return {"data": found, "links": {}, "meta": {"elapsed": 1, "request_id": uuid.uuid4().hex,
                                                     "status": "done", "page": {}}}

    def monitor_state(self, monitor, now=None):
        """OK, Warn, Alert or No Data for a metric monitor, from the series received."""
        match = MONITOR_QUERY.match(monitor.get("query", ""))
        if monitor.get("type") != "metric alert" or not match:
            return monitor.get("overall_state", "No Data")
        now = now or time.time()
        window = int(match["n"]) * (60 if match["unit"] == "m" else 3600)
        answer = self.query({"query": match["inner"], "from": now - window, "to": now})
        values = [p[1] for s in (answer or {}).get("series", []) for p in s["pointlist"]]
        if not values:
            return "No Data"
        value = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}[match["agg"]](values)
        thresholds = (monitor.get("options") or {}).get("thresholds") or {}
        for state, key in (("Alert", "critical"), ("Warn", "warning")):
            limit = thresholds.get(key, float(match["threshold"]) if key == "critical" else None)
            if limit is not None and _breaches(value, match["op"], float(limit)):
                return state
        return "OK"


def _breaches(value, op, limit):
    return {">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]


# Datadog rolls points up to keep a series under 1500 points; the API's default rollup interval for a time
# frame (docs.datadoghq.com/dashboards/functions/rollup, "Rollup Interval, API"): past hour 20 s, four hours
# 1 min, a day 5 min, two days 10 min, a week 1 h, a month 4 h. A series' `interval` is it in seconds, as
# Datadog's recorded answer shows (datadog-api-client-python, tests/v1/cassettes/test_scenarios/
# test_query_timeseries_points_returns_ok_response.yaml: a day's query, "interval": 300).
ROLLUP_INTERVALS = ((3600, 20), (4 * 3600, 60), (86400, 300), (2 * 86400, 600), (7 * 86400, 3600))


def rollup_interval(seconds):
    return next((interval for frame, interval in ROLLUP_INTERVALS if seconds <= frame), 4 * 3600)


def _log_time(value, default):
    if value in (None, ""):
        return default
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 1e11 else float(value)
    text = str(value)
    if text.isdigit():   # "regular timestamps (milliseconds)" (datadog-api-client's LogsQueryFilter)
        return int(text) / 1000.0
    if text.startswith("now"):
        match = re.match(r"^now(?:-([0-9]+)([smhd]))?$", text)
        seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]] if match and match[1] else 0
        return time.time() - seconds
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _log_matches(attributes, term):
    key, _, value = term.partition(":")
    if key.startswith("@"):
        node = attributes.get("attributes") or {}
        for part in key[1:].split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node is not None and (value == "*" or str(node) == value)
    if key in ("service", "host", "status"):
        return str(attributes.get(key)) == value
    return term in attributes.get("tags", [])


def decode(body_bytes, headers):
    """A request body as the intake reads it: gzip or deflate, then JSON or msgpack."""
    encoding = (headers.get("Content-Encoding") or "").lower()
    if encoding == "gzip":
        body_bytes = gzip.decompress(body_bytes)
    elif encoding == "deflate":
        import zlib

        body_bytes = zlib.decompress(body_bytes)
    if "msgpack" in (headers.get("Content-Type") or ""):
        import msgpack

        return msgpack.unpackb(body_bytes, raw=False, strict_map_key=False)
    return json.loads(body_bytes) if body_bytes else None
