"""The shipped downtimes mute exactly the off hours: 19:00 to 09:00 every working night, Monday morning
included, and the whole weekend, in the configured timezone, across daylight-saving changes.

The RRULEs of templates/downtimes/*.yml are expanded (python-dateutil) from the start the role would
send, over sample weeks that include DST changes, and every 15-minute slot is checked against the rule:
muted unless Monday to Friday 09:00-19:00 local time. How Datadog ends an occurrence across a DST
change is not documented, so both readings are checked: start plus the duration in elapsed time, and
in wall-clock time.
"""
import datetime
import re
from zoneinfo import ZoneInfo

import jinja2
import pytest
import yaml
from ansible.module_utils.datadog_resources.definitions import next_recurrence_start
from dateutil.rrule import rrulestr
from datadog_resources_support import ROLE

FILES = sorted((ROLE / "templates/downtimes").glob("*.yml"))
UTC = datetime.timezone.utc
SLOT = datetime.timedelta(minutes=15)
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Mondays of sample weeks: ordinary ones, and the weeks around the DST changes of Europe (last Sundays of
# March and October), the USA (second Sunday of March, first of November) and Australia (April, October).
WEEKS = ["2027-01-04", "2027-03-08", "2027-03-15", "2027-03-22", "2027-03-29", "2027-04-05", "2027-06-14",
         "2027-09-27", "2027-10-04", "2027-10-25", "2027-11-01", "2027-11-08", "2027-12-27"]
TIMEZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Tokyo"]


def definitions(timezone):
    env = jinja2.Environment(variable_start_string="${", variable_end_string="}", comment_start_string="[#",
                             comment_end_string="#]", undefined=jinja2.StrictUndefined)
    values = {"datadog_resources_downtime_timezone": timezone, "datadog_resources_host": "lab"}
    return [yaml.safe_load(env.from_string(f.read_text()).render(values)) for f in FILES]


def duration(text):
    number, unit = re.fullmatch(r"([0-9]+)([mhdw])", text).groups()
    return datetime.timedelta(**{UNITS[unit]: int(number)})


def windows(timezone, since, until, wall_clock):
    """(start, end) in UTC of every occurrence of every shipped recurrence that overlaps [since, until)."""
    zone = ZoneInfo(timezone)
    found = []
    for definition in definitions(timezone):
        schedule = definition["attributes"]["schedule"]
        assert schedule["timezone"] == timezone
        for recurrence in schedule["recurrences"]:
            now = (since - datetime.timedelta(days=8)).astimezone(zone).replace(tzinfo=None)
            start = next_recurrence_start(recurrence["rrule"], recurrence["start"], timezone, now=now)
            length = duration(recurrence["duration"])
            rule = rrulestr(recurrence["rrule"], dtstart=datetime.datetime.fromisoformat(start))
            local_until = until.astimezone(zone).replace(tzinfo=None)
            for local in rule.between(datetime.datetime.fromisoformat(start), local_until, inc=True):
                begin = local.replace(tzinfo=zone).astimezone(UTC)
                end = ((local + length).replace(tzinfo=zone).astimezone(UTC) if wall_clock else begin + length)
                if end > since:
                    found.append((begin, end))
    return found


def off_hours(instant, zone):
    local = instant.astimezone(zone)
    return not (local.weekday() < 5 and datetime.time(9) <= local.time() < datetime.time(19))


@pytest.mark.parametrize("wall_clock", [False, True], ids=["elapsed", "wall-clock"])
@pytest.mark.parametrize("timezone", TIMEZONES)
def test_every_quarter_hour_is_muted_exactly_in_the_off_hours(timezone, wall_clock):
    zone = ZoneInfo(timezone)
    wrong = []
    for monday in WEEKS:
        since = datetime.datetime.fromisoformat(monday).replace(tzinfo=zone).astimezone(UTC)
        until = since + datetime.timedelta(days=7)
        spans = windows(timezone, since, until, wall_clock)
        slot = since
        while slot < until:
            muted = any(begin <= slot < end for begin, end in spans)
            if muted != off_hours(slot, zone):
                wrong.append("%s %s" % (slot.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                                        "muted" if muted else "not muted"))
            slot += SLOT
    assert wrong[:12] == [] and len(wrong) == 0


def test_monday_morning_is_muted():
    """The bug this guards against: Sunday night into Monday 09:00 was left unmuted."""
    zone = ZoneInfo("UTC")
    monday = datetime.datetime(2027, 1, 4, 3, 0, tzinfo=zone)
    spans = windows("UTC", monday - datetime.timedelta(days=1), monday + datetime.timedelta(days=1), False)
    assert any(begin <= monday < end for begin, end in spans)
