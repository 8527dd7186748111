# -*- coding: utf-8 -*-
"""The role's definitions turned into the bodies Datadog receives, with the mark of the objects it manages.

Datadog has no field to say "managed by this tool" on all three kinds, so the mark is:
  dashboard: a line `[managed-by:NAME]` at the end of `description` (dashboard tags take only team:);
  monitor:   a tag `managed-by:NAME`;
  downtime:  a line `[managed-by:NAME downtime:TITLE]` at the end of `message` (a downtime has no
             name; TITLE is the definition's `name`).
Together with the title (dashboard) or name (monitor) the mark identifies the object on later runs,
and `state: absent` deletes only objects that carry it.
"""

from __future__ import absolute_import, division, print_function

import copy
import datetime
import re

try:
    import zoneinfo

    TIMEZONES = zoneinfo.available_timezones()
except ImportError:  # Python < 3.9: leave the timezone to Datadog
    zoneinfo = None
    TIMEZONES = set()

try:  # a dependency of datadog-api-client
    from dateutil.rrule import rrulestr
except ImportError:
    rrulestr = None

from ansible.module_utils.datadog_resources.schema import body_models, check_body

DOWNTIME_KEYS = ("name", "monitor", "attributes")
PLACEHOLDER_MONITOR_ID = 1
MANAGED_BY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
UTC_OFFSET = re.compile(r"(Z|[+-][0-9]{2}:?[0-9]{2})$")
DURATION = re.compile(r"^[0-9]+[mhdw]$")
TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")
LOCAL_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$")
# Datadog answers a recurrence's start with seconds, without an offset (terraform-provider-datadog's
# cassette datadog/tests/cassettes/TestAccDowntimeScheduleBasicRecurring.yaml): the form sent here too.
START_FORMAT = "%Y-%m-%dT%H:%M:%S"
# A start sent this far ahead at least, so that it is still in the future when Datadog reads it.
START_MARGIN = datetime.timedelta(minutes=1)


def _local_now(timezone):
    zone = zoneinfo.ZoneInfo(timezone) if zoneinfo and timezone in TIMEZONES else datetime.timezone.utc
    return datetime.datetime.now(zone).replace(tzinfo=None, microsecond=0)


def next_recurrence_start(rrule, start, timezone, now=None):
    """The first occurrence of `rrule` at or after now (local time of `timezone`), as Datadog writes it.

    `start` is a time of day ("19:00": the rule's occurrences at that time) or a local date and time
    (the rule's first occurrence, kept when it is still ahead). Datadog can refuse a recurrence that
    starts in the past when a schedule is created or updated, so a start in the past is moved to the
    next occurrence of its rule. `now` (naive, local) is for tests.
    """
    now = now or _local_now(timezone)
    try:
        if TIME_OF_DAY.match(start):
            clock = datetime.time.fromisoformat(start)
            anchor = datetime.datetime.combine(now.date() - datetime.timedelta(days=7), clock)
        else:
            anchor = datetime.datetime.fromisoformat(start)
        following = rrulestr(rrule, dtstart=anchor).after(now + START_MARGIN, inc=True) if rrulestr else None
    except (TypeError, ValueError):  # check_definitions names the bad start or rule
        return start
    return (following or anchor).strftime(START_FORMAT)


def same_cadence(rrule, first, second):
    """Whether two recurrence starts (local date and time strings) are occurrences of the same series of `rrule`.

    A start sent on an earlier run and the one a rerun would send differ by whole periods of the rule:
    the downtime is the same, and is not rewritten.
    """
    try:
        low, high = sorted(datetime.datetime.fromisoformat(v) for v in (first, second))
    except (TypeError, ValueError):
        return False
    if low == high:
        return True
    if rrulestr is None:
        return False
    try:
        return rrulestr(rrule, dtstart=low).after(high, inc=True) == high
    except (TypeError, ValueError):
        return False


def dashboard_marker(managed_by):
    return "[managed-by:%s]" % managed_by


def monitor_marker(managed_by):
    return "managed-by:%s" % managed_by


def downtime_marker(managed_by, name):
    return "[managed-by:%s downtime:%s]" % (managed_by, name)


def _with_line(text, line):
    text = (text or "").rstrip()
    return "%s\n\n%s" % (text, line) if text else line


def dashboard_body(definition, managed_by):
    body = copy.deepcopy(definition)
    body["description"] = _with_line(body.get("description"), dashboard_marker(managed_by))
    return body


def monitor_body(definition, managed_by):
    body = copy.deepcopy(definition)
    tags = list(body.get("tags") or [])
    if monitor_marker(managed_by) not in tags:
        tags.append(monitor_marker(managed_by))
    body["tags"] = tags
    return body


def downtime_attributes(definition, managed_by, monitor_id, now=None):
    """The downtime's attributes; `monitor_id` fills monitor_identifier when the definition names a monitor.

    Each recurrence's start becomes the next occurrence of its rule (next_recurrence_start).
    """
    attributes = copy.deepcopy(definition["attributes"])
    schedule = attributes.get("schedule") if isinstance(attributes.get("schedule"), dict) else {}
    for recurrence in schedule.get("recurrences") or []:
        if isinstance(recurrence, dict) and isinstance(recurrence.get("start"), str) and recurrence.get("rrule"):
            recurrence["start"] = next_recurrence_start(recurrence["rrule"], recurrence["start"],
                                                        schedule.get("timezone") or "UTC", now)
    attributes["message"] = _with_line(attributes.get("message"), downtime_marker(managed_by, definition["name"]))
    if definition.get("monitor") is not None:
        attributes["monitor_identifier"] = {"monitor_id": monitor_id}
    return attributes


def check_definitions(dashboards, monitors, downtimes, managed_by, labels=None):
    """Every problem of the definitions, as "where: what" strings; empty when all are valid."""
    labels = labels or {}
    problems = []
    if not MANAGED_BY_PATTERN.match(managed_by or ""):
        problems.append("managed_by %r: use lowercase letters, digits, '_', '.' and '-' (it becomes a tag)"
                        % managed_by)
        return problems
    models = body_models()
    _check_kind(problems, "dashboards", dashboards, labels, "title",
                lambda d: check_body(dashboard_body(d, managed_by), models["dashboard"]) + _dashboard_rules(d))
    _check_kind(problems, "monitors", monitors, labels, "name",
                lambda d: check_body(monitor_body(d, managed_by), models["monitor"]))
    monitor_names = set(m.get("name") for m in monitors if isinstance(m, dict))
    _check_kind(problems, "downtimes", downtimes, labels, "name",
                lambda d: _downtime_problems(d, managed_by, monitor_names, models["downtime"]))
    return problems


def _check_kind(problems, kind, definitions, labels, key, check):
    seen = set()
    for index, definition in enumerate(definitions):
        names = labels.get(kind) or []
        where = "%s[%d]" % (kind, index) if index >= len(names) else "%s (%s[%d])" % (names[index], kind, index)
        if not isinstance(definition, dict):
            problems.append("%s: expected a mapping, got %s" % (where, type(definition).__name__))
            continue
        name = definition.get(key)
        if not isinstance(name, str) or not name.strip():
            problems.append("%s: `%s` is required: it is how the role finds the object again" % (where, key))
            continue
        if name in seen:
            problems.append("%s: another definition has the same %s %r" % (where, key, name))
        seen.add(name)
        problems.extend("%s: %s" % (where, p) for p in check(definition))


def _dashboard_rules(definition):
    return ["tags: %r: Datadog accepts only team: tags on dashboards" % tag
            for tag in definition.get("tags") or [] if not str(tag).startswith("team:")]


def _downtime_problems(definition, managed_by, monitor_names, model):
    problems = ["%s: unknown key (a downtime definition has: %s)" % (key, ", ".join(DOWNTIME_KEYS))
                for key in definition if key not in DOWNTIME_KEYS]
    attributes = definition.get("attributes")
    if not isinstance(attributes, dict):
        return problems + ["attributes: required, a mapping of the v2 downtime's attributes"]
    monitor = definition.get("monitor")
    if monitor is not None and "monitor_identifier" in attributes:
        problems.append("monitor: give either `monitor` or attributes.monitor_identifier, not both")
    elif monitor is not None and monitor not in monitor_names:
        problems.append("monitor: %r is not the name of any monitor definition" % monitor)
    elif monitor is None and "monitor_identifier" not in attributes:
        problems.append("monitor: name the monitor to mute (or set attributes.monitor_identifier)")
    body = downtime_attributes(definition, managed_by, PLACEHOLDER_MONITOR_ID)
    problems.extend(check_body(body, model, path="attributes"))
    schedule = attributes.get("schedule") if isinstance(attributes.get("schedule"), dict) else {}
    for where, zone in (("attributes.display_timezone", attributes.get("display_timezone")),
                        ("attributes.schedule.timezone", schedule.get("timezone"))):
        if TIMEZONES and isinstance(zone, str) and zone not in TIMEZONES:
            problems.append("%s: %r is not an IANA timezone (such as UTC or Europe/Paris)" % (where, zone))
    for index, recurrence in enumerate(schedule.get("recurrences") or []):
        if not isinstance(recurrence, dict):
            continue
        where = "attributes.schedule.recurrences[%d]" % index
        if re.search(r"DTSTART|DTEND|DURATION", str(recurrence.get("rrule", ""))):
            problems.append("%s.rrule: Datadog refuses DTSTART, DTEND and DURATION in the rrule" % where)
        if not DURATION.match(str(recurrence.get("duration", ""))):
            problems.append("%s.duration: an integer followed by m, h, d or w, such as 14h" % where)
        start = recurrence.get("start")
        if UTC_OFFSET.search(str(start or "")):
            problems.append("%s.start: no UTC offset (the schedule's timezone applies)" % where)
        elif start is not None and not (TIME_OF_DAY.match(str(start)) or LOCAL_DATETIME.match(str(start))):
            problems.append("%s.start: a time of day such as 19:00, or a local date and time such as "
                            "2030-01-07T19:00 (got %r)" % (where, start))
        elif rrulestr is not None and recurrence.get("rrule") and not re.search(r"DTSTART|DTEND|DURATION",
                                                                              str(recurrence["rrule"])):
            try:
                rrulestr(str(recurrence["rrule"]), dtstart=datetime.datetime(2030, 1, 7))
            except (TypeError, ValueError) as err:
                problems.append("%s.rrule: not an RFC 5545 rule (%s)" % (where, err))
    return problems
