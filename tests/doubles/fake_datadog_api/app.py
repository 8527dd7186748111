"""Stand-in for Datadog's API logic in tests: state, ids, server-side fields, keys, injected faults.

FakeDatadog.handle(method, target, headers, body) answers one request without any HTTP, so unit
tests can drive it directly; server.py puts it behind http.server. Only what
roles/datadog_resources uses is served (see server.py's docstring for the list).
"""

import copy
import datetime
import json
import os
import random
import re
import string
import tempfile
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from fake_datadog_api import intake
from fake_datadog_api.bodies import problems

DEFAULT_API_KEY = "fake-datadog-api-key-0123456789abcdef"
DEFAULT_APP_KEY = "fake-datadog-app-key-0123456789abcdef0123"
CREATOR = {"email": "lab@example.com", "handle": "lab@example.com", "name": "Lab Automation"}
MONITOR_OPTION_DEFAULTS = {
    "notify_audit": False,
    "include_tags": True,
    "new_host_delay": 300,
    "notify_no_data": False,
    "silenced": {},
}
THRESHOLD_IN_QUERY = re.compile(r"(?:>=|<=|>|<)\s*(-?[0-9.]+)\s*$")
DURATION = re.compile(r"^[0-9]+[mhdw]$")
LOCAL_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Datadog's canonical forms, from its recorded real answers (cassettes):
# - A recurrence's start comes back as YYYY-MM-DDTHH:MM:SS, no offset; the schedule gains
#   `current_downtime` {start, end} in UTC with +00:00; notify_end_types defaults to ["expired"];
#   notify_end_states comes back in another order than sent (["alert","warn"] -> ["warn","alert"]):
#   terraform-provider-datadog datadog/tests/cassettes/TestAccDowntimeScheduleBasicRecurring.yaml.
# - A one-time schedule's start sent with Z comes back with +00:00, and the default notify_end_states
#   is the three states in varying order: .../TestAccDowntimeScheduleChanged.yaml, and
#   datadog-api-client-python tests/v2/cassettes/test_scenarios/test_get_all_downtimes_returns_ok_response.yaml
#   (["warn","no data","alert"]).
# - A monitor's thresholds sent as integers come back as floats (2 -> 2.0), and options gain
#   notify_audit false and silenced {}: terraform-provider-datadog .../TestAccDatadogMonitor_Basic.yaml.
NOTIFY_END_STATES_ORDER = ["warn", "no data", "alert"]


def _local(start, timezone):
    """A recurrence's local start in its schedule's timezone, as an aware UTC datetime."""
    zone = ZoneInfo(timezone or "UTC")
    return datetime.datetime.fromisoformat(start).replace(tzinfo=zone).astimezone(datetime.timezone.utc)


def _instant(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _period(recurrence, timezone, now):
    """The period of one recurrence in progress at `now`, else its next one, else None (the rule has
    ended): (start, end) as aware UTC datetimes. The rule's occurrences are local times of the schedule's
    timezone, from the recurrence's start on; a duration is elapsed time."""
    zone = ZoneInfo(timezone or "UTC")
    number, unit = re.match(r"([0-9]+)([mhdw])", recurrence["duration"]).groups()
    length = datetime.timedelta(**{UNITS[unit]: int(number)})
    first = datetime.datetime.fromisoformat(recurrence["start"])
    rule = rrulestr(recurrence["rrule"], dtstart=first)
    local_now = now.astimezone(zone).replace(tzinfo=None)
    occurrences = [first] if first <= local_now and first not in rule else []
    occurrences += rule.between(local_now - length, local_now, inc=True)
    for begin in occurrences:
        begin = begin.replace(tzinfo=zone).astimezone(datetime.timezone.utc)
        if begin <= now < begin + length:
            return begin, begin + length
    following = rule.after(local_now)
    if following is None:
        return None
    begin = following.replace(tzinfo=zone).astimezone(datetime.timezone.utc)
    return begin, begin + length


def _float_thresholds(monitor):
    thresholds = (monitor.get("options") or {}).get("thresholds")
    if isinstance(thresholds, dict):
        monitor["options"]["thresholds"] = {k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                                            else v for k, v in thresholds.items()}


def _empty_state():
    return {"dashboards": {}, "monitors": {}, "downtimes": {}, "next_monitor_id": 1000, "next_widget_id": 1}


class Reply:
    """One answer: status, JSON payload (None: no body) and extra headers."""

    def __init__(self, status, payload=None, headers=None):
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def _error(status, *messages):
    return Reply(status, {"errors": list(messages)})


class FakeDatadog:
    """The fake's state and its answers. Thread-safe: one lock around every request."""

    def __init__(self, api_key=DEFAULT_API_KEY, app_key=DEFAULT_APP_KEY, state_file=None):
        self.api_key = api_key
        self.app_key = app_key
        self.state_file = state_file
        self.lock = threading.Lock()
        self.requests = []
        self.injections = []
        self.state = _empty_state()
        self.intake = intake.Intake()
        # The fake's clock: seconds to add to the real time. It is what "now" means to the downtimes
        # (their status, current_downtime, the start-in-the-past rule) and to the server's timestamps.
        self.clock_offset = 0.0
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as handle:
                self.state.update(json.load(handle))

    # ---- entry point -------------------------------------------------------------------------

    def handle(self, method, target, headers, body_bytes):
        """Answer one request. `headers` is any mapping with case-insensitive .get (or a dict)."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            if path.startswith("/fake/"):
                return self._control(method, path, body_bytes)
            reply = self._api(method, path, query, headers, body_bytes)
            self.requests.append(
                {"method": method, "path": path, "query": parts.query, "status": reply.status, "time": time.time()}
            )
            return reply

    # ---- the fake's clock ---------------------------------------------------------------------

    def utcnow(self):
        """The fake's current time (an aware UTC datetime): the real time unless a test set the clock."""
        return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.clock_offset)

    def _now(self):
        return self.utcnow().isoformat(timespec="microseconds")

    def set_clock(self, now=None):
        """Make it `now` (an aware datetime, or ISO 8601 text with its offset) from here on, time going on
        from there; None puts the clock back to the real time."""
        with self.lock:
            self._set_clock(now)

    def _set_clock(self, now):
        if isinstance(now, str):
            now = datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))
        if now is not None and now.tzinfo is None:
            raise ValueError("the clock needs a time with its UTC offset")
        real = datetime.datetime.now(datetime.timezone.utc)
        self.clock_offset = 0.0 if now is None else (now - real).total_seconds()

    def _clock(self):
        return {"now": self._now(), "offset_seconds": self.clock_offset}

    # ---- test control (not Datadog's) ------------------------------------------------------

    def _control(self, method, path, body_bytes):
        body = json.loads(body_bytes) if body_bytes else {}
        if path == "/fake/state" and method == "GET":
            return Reply(200, self.state)
        if path == "/fake/state" and method == "PUT":
            self.state = _empty_state()
            self.state.update(body)
            self._save()
            return Reply(200, self.state)
        if path == "/fake/intake" and method == "GET":
            return Reply(200, self.intake.data)
        if path == "/fake/intake" and method == "DELETE":
            self.intake.data = intake.empty()
            return Reply(200, self.intake.data)
        if path == "/fake/reset" and method == "POST":
            self.clock_offset = 0.0
            self.state = _empty_state()
            self.intake.data = intake.empty()
            self.requests = []
            self.injections = []
            self._save()
            return Reply(200, {"reset": True})
        if path == "/fake/clock" and method == "GET":
            return Reply(200, self._clock())
        if path == "/fake/clock" and method == "DELETE":
            self._set_clock(None)
            return Reply(200, self._clock())
        if path == "/fake/clock" and method == "PUT":
            try:
                self._set_clock(str(body["now"]))
            except (KeyError, TypeError, ValueError):
                return _error(400, 'PUT /fake/clock takes {"now": "YYYY-MM-DDTHH:MM:SS+HH:MM"}, with its offset')
            return Reply(200, self._clock())
        if path == "/fake/requests" and method == "GET":
            return Reply(200, self.requests)
        if path == "/fake/requests" and method == "DELETE":
            self.requests = []
            return Reply(200, [])
        if path == "/fake/inject" and method == "POST":
            rule = {"status": int(body["status"]), "count": body.get("count"), "path": body.get("path", "/api/"),
                    "method": body.get("method"), "reset": body.get("reset", 1)}
            self.injections.append(rule)
            return Reply(200, rule)
        if path == "/fake/inject" and method == "DELETE":
            self.injections = []
            return Reply(200, [])
        return _error(404, "no such control endpoint: %s %s" % (method, path))

    def inject(self, status, count=None, path="/api/", method=None, reset=1):
        """Make the next `count` matching requests (every one when None) answer `status`."""
        with self.lock:
            self.injections.append(
                {"status": status, "count": count, "path": path, "method": method, "reset": reset}
            )

    # ---- Datadog's API ---------------------------------------------------------------------

    def _api(self, method, path, query, headers, body_bytes):
        injected = self._injected(method, path)
        if injected is not None:
            return injected
        api_key = headers.get("DD-API-KEY")
        if (method, path) in INTAKE_ROUTES:
            return self._intake(INTAKE_ROUTES[(method, path)], query, api_key, headers, body_bytes)
        if path == "/api/v1/validate" and method == "GET":
            if api_key != self.api_key:
                return _error(403, "Forbidden")
            return Reply(200, {"valid": True})
        if api_key != self.api_key or headers.get("DD-APPLICATION-KEY") != self.app_key:
            return _error(403, "Forbidden")
        try:
            body = json.loads(body_bytes) if body_bytes else None
        except ValueError:
            return _error(400, "Invalid JSON body")
        for pattern, handlers in ROUTES:
            match = pattern.match(path)
            if match:
                handler = handlers.get(method)
                if handler is None:
                    return _error(405, "Method Not Allowed")
                return handler(self, query, body, *match.groups())
        return _error(404, "Not found: %s" % path)

    # ---- intake and its read side (intake.py) -------------------------------------------------

    def _intake(self, name, query, api_key, headers, body_bytes):
        if name in INTAKE_READS:
            if api_key != self.api_key or headers.get("DD-APPLICATION-KEY") != self.app_key:
                return _error(403, "Forbidden")
        elif api_key != self.api_key:
            return _error(403, "Forbidden")
        try:
            body = intake.decode(body_bytes, headers)
        except Exception:  # noqa: BLE001 - any undecodable body is a 400, as Datadog answers
            return _error(400, "Invalid body")
        if name == "hosts":
            return Reply(200, self.intake.list_hosts(query))
        if name == "query":
            answer = self.intake.query(query)
            if answer is None:
                return _error(400, "Error parsing query: %s" % query.get("query"))
            return Reply(200, answer)
        if name == "logs_search":
            return Reply(200, self.intake.search_logs(body))
        try:
            found = getattr(self.intake, name)(body)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            found = ["body: %s %s" % (type(err).__name__, err)]
        if found:
            return _error(400, *found)
        return Reply(202, {} if name in ("series", "trace_stats") else {"status": "ok"})

    def _injected(self, method, path):
        for rule in self.injections:
            if rule["count"] is not None and rule["count"] <= 0:
                continue
            if not path.startswith(rule["path"]) or (rule["method"] and rule["method"] != method):
                continue
            if rule["count"] is not None:
                rule["count"] -= 1
            status = rule["status"]
            if status == 429:
                reset = str(rule["reset"])
                return Reply(429, {"errors": ["Rate limit exceeded"]}, {
                    "X-RateLimit-Limit": "100", "X-RateLimit-Period": "10",
                    "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset, "X-RateLimit-Name": "fake"})
            if status == 403:
                return _error(403, "Forbidden")
            return _error(status, "Injected failure %d" % status)
        return None

    def _save(self):
        if not self.state_file:
            return
        directory = os.path.dirname(os.path.abspath(self.state_file))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, encoding="utf-8") as handle:
            json.dump(self.state, handle, indent=1, sort_keys=True)
        os.replace(handle.name, self.state_file)

    # ---- dashboards ------------------------------------------------------------------------

    def list_dashboards(self, query, _body):
        start = int(query.get("start", 0))
        count = int(query.get("count", 100))
        keys = ("id", "title", "description", "layout_type", "url", "is_read_only",
                "created_at", "modified_at", "author_handle")
        summaries = [{k: d.get(k) for k in keys} for d in self.state["dashboards"].values()]
        return Reply(200, {"dashboards": summaries[start:start + count]})

    def create_dashboard(self, _query, body):
        found = problems("dashboard", body)
        if found:
            return _error(400, *found)
        dashboard_id = "-".join(
            "".join(random.choices(string.ascii_lowercase + string.digits, k=3)) for _ in range(3))
        now = self._now()
        dashboard = {
            "notify_list": [], "template_variables": [], "is_read_only": False, "description": None, "tags": None,
        }
        dashboard.update(self._read_write(body, DASHBOARD_READ_ONLY))
        dashboard.update({
            "id": dashboard_id, "author_handle": CREATOR["handle"], "author_name": CREATOR["name"],
            "created_at": now, "modified_at": now,
            "url": "/dashboard/%s/%s" % (dashboard_id, re.sub(r"[^a-z0-9]+", "-", body["title"].lower()).strip("-")),
        })
        if dashboard.get("layout_type") == "ordered":
            dashboard.setdefault("reflow_type", "auto")
        self._number_widgets(dashboard.get("widgets", []))
        self.state["dashboards"][dashboard_id] = dashboard
        self._save()
        return Reply(200, dashboard)

    def get_dashboard(self, _query, _body, dashboard_id):
        dashboard = self.state["dashboards"].get(dashboard_id)
        if dashboard is None:
            return _error(404, "Dashboard %s not found" % dashboard_id)
        return Reply(200, dashboard)

    def update_dashboard(self, _query, body, dashboard_id):
        old = self.state["dashboards"].get(dashboard_id)
        if old is None:
            return _error(404, "Dashboard %s not found" % dashboard_id)
        found = problems("dashboard", body)
        if found:
            return _error(400, *found)
        dashboard = {k: old[k] for k in ("id", "author_handle", "author_name", "created_at", "url")}
        dashboard.update({"notify_list": [], "template_variables": [], "is_read_only": False,
                          "description": None, "tags": None})
        dashboard.update(self._read_write(body, DASHBOARD_READ_ONLY))
        dashboard["modified_at"] = self._now()
        if dashboard.get("layout_type") == "ordered":
            dashboard.setdefault("reflow_type", "auto")
        self._number_widgets(dashboard.get("widgets", []))
        self.state["dashboards"][dashboard_id] = dashboard
        self._save()
        return Reply(200, dashboard)

    def delete_dashboard(self, _query, _body, dashboard_id):
        if self.state["dashboards"].pop(dashboard_id, None) is None:
            return _error(404, "Dashboard %s not found" % dashboard_id)
        self._save()
        return Reply(200, {"deleted_dashboard_id": dashboard_id})

    def _number_widgets(self, widgets):
        for widget in widgets:
            if "id" not in widget:
                widget["id"] = self.state["next_widget_id"]
                self.state["next_widget_id"] += 1
            self._number_widgets(widget.get("definition", {}).get("widgets", []))

    @staticmethod
    def _read_write(body, read_only):
        return {k: copy.deepcopy(v) for k, v in body.items() if k not in read_only}

    # ---- monitors --------------------------------------------------------------------------

    def list_monitors(self, query, _body):
        monitors = list(self.state["monitors"].values())
        name = query.get("name")
        if name:
            monitors = [m for m in monitors if name.lower() in m["name"].lower()]
        for param in ("monitor_tags", "tags"):
            wanted = [t.strip() for t in query.get(param, "").split(",") if t.strip()]
            if wanted:
                monitors = [m for m in monitors if all(t in m.get("tags", []) for t in wanted)]
        if "page" in query:
            size = int(query.get("page_size", 100))
            start = int(query["page"]) * size
            monitors = monitors[start:start + size]
        return Reply(200, [self._with_state(m) for m in monitors])

    def create_monitor(self, _query, body):
        found = problems("monitor", body) or self._monitor_rules(body)
        if found:
            return _error(400, *found)
        monitor_id = self.state["next_monitor_id"]
        self.state["next_monitor_id"] += 1
        now = self._now()
        monitor = {"name": "", "message": "", "tags": [], "priority": None, "restricted_roles": None}
        monitor.update(self._read_write(body, MONITOR_READ_ONLY))
        monitor["options"] = dict(MONITOR_OPTION_DEFAULTS, **body.get("options", {}))
        _float_thresholds(monitor)
        monitor.update({"id": monitor_id, "org_id": 1, "created": now, "modified": now, "creator": CREATOR,
                        "deleted": None, "multi": False, "overall_state": "No Data",
                        "overall_state_modified": None})
        self.state["monitors"][str(monitor_id)] = monitor
        self._save()
        return Reply(200, monitor)

    def get_monitor(self, _query, _body, monitor_id):
        monitor = self.state["monitors"].get(monitor_id)
        if monitor is None:
            return _error(404, "Monitor not found")
        return Reply(200, self._with_state(monitor))

    def _with_state(self, monitor):
        return dict(monitor, overall_state=self.intake.monitor_state(monitor))

    def update_monitor(self, _query, body, monitor_id):
        old = self.state["monitors"].get(monitor_id)
        if old is None:
            return _error(404, "Monitor not found")
        found = problems("monitor_update", body)
        merged = dict(old, **self._read_write(body, MONITOR_READ_ONLY))
        if "options" in body:
            # Datadog replaces `options` as a whole: what a PUT doesn't send goes back to defaults.
            merged["options"] = dict(MONITOR_OPTION_DEFAULTS, **body["options"])
        found = found or self._monitor_rules(merged)
        if found:
            return _error(400, *found)
        _float_thresholds(merged)
        merged["modified"] = self._now()
        self.state["monitors"][monitor_id] = merged
        self._save()
        return Reply(200, merged)

    def delete_monitor(self, _query, _body, monitor_id):
        if self.state["monitors"].pop(monitor_id, None) is None:
            return _error(404, "Monitor not found")
        self._save()
        return Reply(200, {"deleted_monitor_id": int(monitor_id)})

    @staticmethod
    def _monitor_rules(monitor):
        critical = ((monitor.get("options") or {}).get("thresholds") or {}).get("critical")
        match = THRESHOLD_IN_QUERY.search(monitor.get("query", ""))
        if monitor.get("type") == "metric alert" and critical is not None and match:
            if float(match.group(1)) != float(critical):
                return ["The value provided for parameter 'query' is invalid: critical threshold (%s) does not "
                        "match that used in the query (%s)." % (float(critical), float(match.group(1)))]
        return []

    # ---- downtimes (v2) --------------------------------------------------------------------

    def list_downtimes(self, query, _body):
        downtimes = [self._at_now(d) for d in self.state["downtimes"].values()]
        # "current_only: Only return downtimes that are active when the request is made" (Datadog's API
        # reference, List downtimes; datadog-api-client's list_downtimes); no future ones (DataDog/datadogpy
        # issue 757). Without it every downtime is listed, canceled ones too.
        if query.get("current_only") == "true":
            downtimes = [d for d in downtimes if d["attributes"]["status"] == "active"]
        offset = int(query.get("page[offset]", 0))
        limit = int(query.get("page[limit]", 30))
        return Reply(200, {"data": downtimes[offset:offset + limit],
                           "meta": {"page": {"total_filtered_count": len(downtimes)}}})

    def create_downtime(self, _query, body):
        found = problems("downtime_create", body)
        attributes = (body or {}).get("data", {}).get("attributes", {})
        found = found or self._downtime_rules(attributes)
        if found:
            return _error(400, *found)
        downtime_id = str(uuid.uuid4())
        now = self._now()
        stored = {"display_timezone": "UTC", "message": None, "mute_first_recovery_notification": False,
                  "notify_end_states": ["alert", "no data", "warn"], "notify_end_types": ["expired"]}
        stored.update(copy.deepcopy(attributes))
        stored.update({"created": now, "modified": now, "canceled": None, "status": "scheduled"})
        self._fill_schedule(stored)
        self._canonical_downtime(stored)
        downtime = {"type": "downtime", "id": downtime_id, "attributes": stored,
                    "relationships": self._downtime_relationships(stored)}
        self.state["downtimes"][downtime_id] = downtime
        self._save()
        return Reply(200, {"data": self._at_now(downtime)})

    def get_downtime(self, _query, _body, downtime_id):
        downtime = self.state["downtimes"].get(downtime_id)
        if downtime is None:
            return _error(404, "Downtime not found")
        return Reply(200, {"data": self._at_now(downtime)})

    def update_downtime(self, _query, body, downtime_id):
        downtime = self.state["downtimes"].get(downtime_id)
        if downtime is None:
            return _error(404, "Downtime not found")
        found = problems("downtime_update", body)
        if not found and body["data"]["id"] != downtime_id:
            found = ["data.id %r does not match the downtime in the path" % body["data"]["id"]]
        attributes = (body or {}).get("data", {}).get("attributes", {})
        found = found or self._downtime_rules(attributes)
        if found:
            return _error(400, *found)
        stored = downtime["attributes"]
        stored.update(copy.deepcopy(attributes))
        stored["modified"] = self._now()
        self._fill_schedule(stored)
        self._canonical_downtime(stored)
        downtime["relationships"] = self._downtime_relationships(stored)
        self._save()
        return Reply(200, {"data": self._at_now(downtime)})

    def cancel_downtime(self, _query, _body, downtime_id):
        downtime = self.state["downtimes"].get(downtime_id)
        if downtime is None:
            return _error(404, "Downtime not found")
        downtime["attributes"].update({"canceled": self._now(), "status": "canceled"})
        self._save()
        return Reply(204)

    def _downtime_rules(self, attributes):
        found = []
        monitor_id = (attributes.get("monitor_identifier") or {}).get("monitor_id")
        if monitor_id is not None and str(monitor_id) not in self.state["monitors"]:
            found.append("monitor_identifier.monitor_id: monitor %s does not exist" % monitor_id)
        for index, recurrence in enumerate((attributes.get("schedule") or {}).get("recurrences") or []):
            if re.search(r"DTSTART|DTEND|DURATION", recurrence.get("rrule", "")):
                found.append("schedule.recurrences[%d].rrule: DTSTART, DTEND and DURATION are not supported" % index)
            if not DURATION.match(recurrence.get("duration", "")):
                found.append("schedule.recurrences[%d].duration: must be an integer followed by m, h, d or w" % index)
            start = recurrence.get("start")
            if re.search(r"(Z|[+-][0-9]{2}:?[0-9]{2})$", start or ""):
                found.append("schedule.recurrences[%d].start: must not include a UTC offset" % index)
            elif start and not LOCAL_START.match(start):
                found.append("schedule.recurrences[%d].start: must be YYYY-MM-DDTHH:MM[:SS]" % index)
            elif start and _local(start, attributes["schedule"].get("timezone")) < self.utcnow():
                # Datadog can refuse a recurrence that starts in the past (datadog-sync-cli moves such
                # starts to the next occurrence of the rule for that reason).
                found.append("schedule.recurrences[%d].start: %s is in the past" % (index, start))
        return found

    @staticmethod
    def _canonical_downtime(stored):
        """Datadog's forms of what it stores (see NOTIFY_END_STATES_ORDER's comment for the cassettes)."""
        for key in ("notify_end_states", "notify_end_types"):
            if isinstance(stored.get(key), list):
                stored[key] = sorted(stored[key], key=lambda v: (NOTIFY_END_STATES_ORDER.index(v)
                                                                 if v in NOTIFY_END_STATES_ORDER else 9, v))
        schedule = stored.get("schedule") or {}
        for key in ("start", "end"):
            if isinstance(schedule.get(key), str):
                schedule[key] = datetime.datetime.fromisoformat(schedule[key].replace("Z", "+00:00")).isoformat()
        for recurrence in schedule.get("recurrences") or []:
            if recurrence.get("start"):
                recurrence["start"] = datetime.datetime.fromisoformat(recurrence["start"]).strftime("%Y-%m-%dT%H:%M:%S")

    def _fill_schedule(self, stored):
        schedule = stored.get("schedule")
        if not schedule:
            return
        if "recurrences" in schedule:
            schedule.setdefault("timezone", "UTC")
            for recurrence in schedule["recurrences"]:
                if not recurrence.get("start"):
                    # "If not provided, the downtime starts the moment it is created."
                    zone = ZoneInfo(schedule["timezone"])
                    recurrence["start"] = self.utcnow().astimezone(zone).strftime("%Y-%m-%dT%H:%M")

    def _at_now(self, downtime):
        """The downtime as Datadog answers it at the fake's current time: `status` is active while one of its
        periods covers now, scheduled before its next one, ended after its last (canceled stays canceled);
        a recurring schedule's `current_downtime` is the period in progress, else the next one, in UTC
        (Datadog's API reference, DowntimeStatus and DowntimeScheduleCurrentDowntimeResponse)."""
        attributes = downtime["attributes"]
        if attributes.get("status") == "canceled":
            return downtime
        now = self.utcnow()
        schedule = attributes.get("schedule") or {}
        if schedule.get("recurrences"):
            periods = [p for r in schedule["recurrences"] for p in [_period(r, schedule.get("timezone"), now)] if p]
            active = [p for p in periods if p[0] <= now < p[1]]
            current = active[0] if active else min(periods) if periods else None
            if current:
                schedule["current_downtime"] = {"start": current[0].isoformat(), "end": current[1].isoformat()}
            attributes["status"] = "active" if active else "scheduled" if current else "ended"
            return downtime
        start, end = (_instant(schedule.get(k)) for k in ("start", "end"))
        start = start or _instant(attributes.get("created"))
        attributes["status"] = ("ended" if end and end <= now else "scheduled" if start and now < start
                                else "active")
        return downtime

    @staticmethod
    def _downtime_relationships(stored):
        relationships = {"created_by": {"data": {"type": "users", "id": "00000000-0000-0000-0000-000000000001"}}}
        monitor_id = (stored.get("monitor_identifier") or {}).get("monitor_id")
        if monitor_id is not None:
            relationships["monitor"] = {"data": {"type": "monitors", "id": str(monitor_id)}}
        return relationships


# Intake endpoints (API key only) and the read endpoints answered from what they received.
INTAKE_ROUTES = {
    ("POST", "/api/v2/series"): "series", ("POST", "/api/v1/check_run"): "check_run",
    ("POST", "/intake"): "host_metadata", ("POST", "/api/v0.2/stats"): "trace_stats",
    ("POST", "/api/v2/logs"): "logs", ("GET", "/api/v1/hosts"): "hosts", ("GET", "/api/v1/query"): "query",
    ("POST", "/api/v2/logs/events/search"): "logs_search",
    ("POST", "/api/v2/dbmmetrics"): "dbm_metrics", ("POST", "/api/v2/databasequery"): "dbm_samples",
}
INTAKE_READS = ("hosts", "query", "logs_search")
DASHBOARD_READ_ONLY = ("id", "author_handle", "author_name", "created_at", "modified_at", "url")
MONITOR_READ_ONLY = ("id", "created", "creator", "deleted", "modified", "multi", "overall_state", "state", "org_id")

ROUTES = [
    (re.compile(r"^/api/v1/dashboard$"), {"GET": FakeDatadog.list_dashboards, "POST": FakeDatadog.create_dashboard}),
    (re.compile(r"^/api/v1/dashboard/([\w-]+)$"), {
        "GET": FakeDatadog.get_dashboard, "PUT": FakeDatadog.update_dashboard,
        "DELETE": FakeDatadog.delete_dashboard}),
    (re.compile(r"^/api/v1/monitor$"), {"GET": FakeDatadog.list_monitors, "POST": FakeDatadog.create_monitor}),
    (re.compile(r"^/api/v1/monitor/([0-9]+)$"), {
        "GET": FakeDatadog.get_monitor, "PUT": FakeDatadog.update_monitor, "DELETE": FakeDatadog.delete_monitor}),
    (re.compile(r"^/api/v2/downtime$"), {"GET": FakeDatadog.list_downtimes, "POST": FakeDatadog.create_downtime}),
    (re.compile(r"^/api/v2/downtime/([\w-]+)$"), {
        "GET": FakeDatadog.get_downtime, "PATCH": FakeDatadog.update_downtime,
        "DELETE": FakeDatadog.cancel_downtime}),
]
