# -*- coding: utf-8 -*-
"""Make Datadog hold the defined dashboards, monitors and downtimes (or none of them), changing only what differs.

An existing object is one with the definition's title/name and the role's mark (see
definitions.py). It is compared with the desired body key by key, in Datadog's
canonical forms: only the keys a definition sets count, so fields Datadog adds (ids of widgets,
author, timestamps, current_downtime) are not drift; a key Datadog leaves out equals its default
(DEFAULTS); numbers compare as numbers (Datadog answers 800 as 800.0); date-times compare by value
("...T19:00" and "...T19:00:00", "Z" and "+00:00"); tag-like lists compare as sets; a downtime's
recurrence start on the same series of its rule as the stored one is the same start. Other lists
are compared item by item. In check mode nothing is written; the results say what would be.
"""

from __future__ import absolute_import, division, print_function

import copy
import datetime
import json
import re

from ansible.module_utils.datadog_resources.definitions import (
    same_cadence,
    dashboard_body,
    dashboard_marker,
    downtime_attributes,
    downtime_marker,
    monitor_body,
    monitor_marker,
)

PAGE = 100
UNORDERED = ("tags", "notify_end_states", "notify_end_types", "restricted_roles")
SHOWN_CHANGES = 10
DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$")
# What Datadog stores for a key left out (its recorded answers; tests/doubles/fake_datadog_api/app.py
# names the cassettes), by the last part of the key's path: setting one of these equals leaving it out.
DEFAULTS = {
    "display_timezone": "UTC",
    "timezone": "UTC",
    "mute_first_recovery_notification": False,
    "notify_end_types": ["expired"],
    "notify_end_states": ["alert", "no data", "warn"],
    "notify_audit": False,
    "include_tags": True,
    "notify_no_data": False,
    "silenced": {},
}


def differences(desired, current, path=""):
    """[(path, current value, desired value)] for every key of `desired` that `current` doesn't match."""
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return [(path, current, desired)]
        found = []
        for key, value in desired.items():
            child = "%s.%s" % (path, key) if path else key
            if current.get(key) is None:
                if not _blank(value) and not (key in DEFAULTS and _equal(value, DEFAULTS[key], key)):
                    found.append((child, current.get(key), value))
                continue
            found.extend(differences(value, current[key], child))
        return found
    if isinstance(desired, list):
        if path.rsplit(".", 1)[-1] in UNORDERED:
            same = isinstance(current, list) and sorted(map(_canonical, desired)) == sorted(map(_canonical, current))
            return [] if same else [(path, current, desired)]
        if not isinstance(current, list):
            return [(path, current, desired)]
        found = []
        for index, (want, have) in enumerate(zip(desired, current)):
            found.extend(differences(want, have, "%s[%d]" % (path, index)))
        if len(current) != len(desired):
            found.append(("len(%s)" % path, len(current), len(desired)))
        return found
    return [] if _same(desired, current) else [(path, current, desired)]


def _equal(desired, current, key):
    return differences({key: desired}, {key: current}) == []


def _same(desired, current):
    if isinstance(desired, str) and isinstance(current, str) and DATETIME.match(desired) and DATETIME.match(current):
        return _datetime(desired) == _datetime(current)
    if isinstance(desired, bool) or isinstance(current, bool):
        return isinstance(desired, bool) and isinstance(current, bool) and desired == current
    if isinstance(desired, (int, float)) and isinstance(current, (int, float)):
        return float(desired) == float(current)
    return desired == current


def _datetime(text):
    """A date-time's value; one without an offset stays naive (a schedule's local time)."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _blank(value):
    return value is None or value == [] or value == {} or value == ""


def _canonical(value):
    return json.dumps(value, sort_keys=True)


class Sync(object):
    """One run: `run(state, dashboards, monitors, downtimes)` returns a result per object."""

    def __init__(self, client, managed_by, check_mode=False):
        self.client = client
        self.managed_by = managed_by
        self.check_mode = check_mode
        self._dashboards = None
        self._downtimes = None

    def run(self, state, dashboards, monitors, downtimes):
        results = []
        if state == "absent":
            results.extend(self.downtime(d, None, absent=True) for d in downtimes)
            results.extend(self.monitor(m, absent=True) for m in monitors)
            results.extend(self.dashboard(d, absent=True) for d in dashboards)
            return results
        monitor_ids = {}
        for definition in monitors:
            result = self.monitor(definition)
            monitor_ids[definition["name"]] = result["id"]
            results.append(result)
        results.extend(self.dashboard(d) for d in dashboards)
        results.extend(self.downtime(d, monitor_ids.get(d.get("monitor"))) for d in downtimes)
        return results

    # ---- dashboards: found by title and the mark in the description ------------------------

    def dashboard(self, definition, absent=False):
        desired = dashboard_body(definition, self.managed_by)
        marker = dashboard_marker(self.managed_by)
        found = sorted(
            (d for d in self._all_dashboards()
             if d.get("title") == desired["title"] and marker in (d.get("description") or "")),
            key=lambda d: (d.get("created_at") or "", d["id"]))
        api = self.client.dashboards
        return self._reconcile(
            "dashboard", desired["title"], desired, [d["id"] for d in found], absent,
            current=lambda i: self.client.call("GET /api/v1/dashboard/%s" % i, api.get_dashboard, i),
            create=lambda: self.client.call("POST /api/v1/dashboard", api.create_dashboard, desired)["id"],
            update=lambda i: self.client.call("PUT /api/v1/dashboard/%s" % i, api.update_dashboard, i, desired),
            delete=lambda i: self.client.call("DELETE /api/v1/dashboard/%s" % i, api.delete_dashboard, i))

    def _all_dashboards(self):
        if self._dashboards is None:
            self._dashboards = []
            while True:
                page = self.client.call("GET /api/v1/dashboard", self.client.dashboards.list_dashboards,
                                        count=PAGE, start=len(self._dashboards))
                batch = (page or {}).get("dashboards") or []
                self._dashboards.extend(batch)
                if len(batch) < PAGE:
                    return self._dashboards
        return self._dashboards

    # ---- monitors: found by name and the managed-by tag -------------------------------------

    def monitor(self, definition, absent=False):
        desired = monitor_body(definition, self.managed_by)
        marker = monitor_marker(self.managed_by)
        api = self.client.monitors
        found, page = [], 0
        while True:
            batch = self.client.call("GET /api/v1/monitor", api.list_monitors, name=desired["name"],
                                     monitor_tags=marker, page=page, page_size=PAGE) or []
            found.extend(m for m in batch if m.get("name") == desired["name"] and marker in (m.get("tags") or []))
            if len(batch) < PAGE:
                break
            page += 1
        found.sort(key=lambda m: m["id"])
        by_id = dict((m["id"], m) for m in found)
        return self._reconcile(
            "monitor", desired["name"], desired, [m["id"] for m in found], absent,
            current=lambda i: by_id[i],
            create=lambda: self.client.call("POST /api/v1/monitor", api.create_monitor, desired)["id"],
            # A PUT replaces `options` as a whole: the full desired body goes every time.
            update=lambda i: self.client.call("PUT /api/v1/monitor/%s" % i, api.update_monitor, i, desired),
            delete=lambda i: self.client.call("DELETE /api/v1/monitor/%s" % i, api.delete_monitor, i))

    # ---- downtimes (v2): found by the mark, with the definition's name, in the message -------

    def downtime(self, definition, monitor_id, absent=False):
        name = definition["name"]
        marker = downtime_marker(self.managed_by, name)
        desired = None if absent else downtime_attributes(definition, self.managed_by, monitor_id)
        found = [d for d in self._all_downtimes()
                 if marker in (d["attributes"].get("message") or "")
                 and d["attributes"].get("status") not in ("canceled", "ended")]
        by_id = dict((d["id"], d["attributes"]) for d in found)
        api = self.client.downtimes

        def create():
            body = {"data": {"type": "downtime", "attributes": desired}}
            return self.client.call("POST /api/v2/downtime", api.create_downtime, body)["data"]["id"]

        def update(downtime_id):
            body = {"data": {"type": "downtime", "id": downtime_id, "attributes": desired}}
            return self.client.call("PATCH /api/v2/downtime/%s" % downtime_id, api.update_downtime, downtime_id, body)

        return self._reconcile(
            "downtime", name, desired, sorted(by_id, key=lambda i: by_id[i].get("created") or ""), absent,
            current=lambda i: by_id[i], create=create, update=update,
            compared=lambda i: _same_series_starts(desired, by_id[i]),
            delete=lambda i: self.client.call("DELETE /api/v2/downtime/%s" % i, api.cancel_downtime, i))

    def _all_downtimes(self):
        if self._downtimes is None:
            self._downtimes = []
            while True:
                page = self.client.call("GET /api/v2/downtime", self.client.downtimes.list_downtimes,
                                        current_only=False, page_offset=len(self._downtimes), page_limit=PAGE)
                batch = (page or {}).get("data") or []
                self._downtimes.extend(batch)
                if len(batch) < PAGE:
                    return self._downtimes
        return self._downtimes

    # ---- the same decision for every kind ---------------------------------------------------

    def _reconcile(self, kind, name, desired, ids, absent, current, create, update, delete, compared=None):
        result = {"kind": kind, "name": name, "id": ids[0] if ids else None, "action": "none",
                  "changes": [], "removed_duplicates": []}
        if absent:
            for object_id in ids:
                if not self.check_mode:
                    delete(object_id)
            result["action"] = "delete" if ids else "none"
            result["removed_duplicates"] = ids[1:]
            return result
        for duplicate in ids[1:]:
            if not self.check_mode:
                delete(duplicate)
            result["removed_duplicates"].append(duplicate)
        if not ids:
            result["action"] = "create"
            if not self.check_mode:
                result["id"] = create()
            return result
        changes = differences(compared(ids[0]) if compared else desired, current(ids[0]))
        if changes:
            result["action"] = "update"
            result["changes"] = [{"path": p, "before": b, "after": a} for p, b, a in changes]
            if not self.check_mode:
                update(ids[0])
        return result


def _same_series_starts(desired, current):
    """`desired` to compare with `current`: a recurrence start on the same series of the same rule as the
    stored one takes the stored value (the role sends the rule's next occurrence, which moves on with time)."""
    compared = copy.deepcopy(desired)
    wanted = ((compared.get("schedule") or {}).get("recurrences")) or []
    stored = (((current or {}).get("schedule") or {}).get("recurrences")) or []
    for want, have in zip(wanted, stored):
        if (isinstance(want, dict) and isinstance(have, dict) and want.get("rrule") == have.get("rrule")
                and isinstance(want.get("start"), str) and isinstance(have.get("start"), str)
                and same_cadence(want["rrule"], want["start"], have["start"])):
            want["start"] = have["start"]
    return compared


def report(results, check_mode):
    """What changes (or would, in check mode): a line per object, then a line per changed field."""
    lines = []
    prefix = "would " if check_mode else ""
    for result in results:
        for duplicate in result["removed_duplicates"]:
            if result["action"] != "delete":
                lines.append("%sdelete duplicate %s %r (id %s)" % (prefix, result["kind"], result["name"], duplicate))
        if result["action"] == "none":
            continue
        lines.append("%s%s %s %r%s" % (prefix, result["action"], result["kind"], result["name"],
                                       " (id %s)" % result["id"] if result["id"] else ""))
        changes = result["changes"]
        for change in changes[:SHOWN_CHANGES]:
            before, after = _excerpts(change["before"], change["after"])
            lines.append("  %s: %s -> %s" % (change["path"], before, after))
        if len(changes) > SHOWN_CHANGES:
            lines.append("  ... and %d more" % (len(changes) - SHOWN_CHANGES))
    return lines


def _excerpts(before, after, width=60):
    """Both values as short JSON; two long strings are cut around their first difference."""
    if isinstance(before, str) and isinstance(after, str) and max(len(before), len(after)) > width:
        first = next((i for i, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
        start = max(0, first - width // 3)

        def cut(text):
            piece = text[start:start + width]
            return ("..." if start else "") + json.dumps(piece) + ("..." if start + width < len(text) else "")
        return cut(before), cut(after)
    return _short(before), _short(after)


def _short(value):
    text = json.dumps(_plain_numbers(value), sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain_numbers(value):
    """800.0 shows as 800 (the client sends thresholds as floats)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return dict((k, _plain_numbers(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value
