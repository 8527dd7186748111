# -*- coding: utf-8 -*-
"""Offline checks of Datadog API bodies against datadog-api-client's models, with the path of each bad field.

The client's own conversion raises on some errors but only marks the model `_unparsed` for a bad
enum value or an unknown oneOf member (an unknown widget type), and it keeps unknown keys. So the
body is first walked here against the models' metadata (openapi_types, attribute_map,
allowed_values, oneOf members, validations, required arguments), which names the exact path;
then the client converts it, and any `_unparsed` node left is reported too.
"""

from __future__ import absolute_import, division, print_function

import datetime
import inspect
import json
import uuid

try:
    from datadog_api_client import Configuration
    from datadog_api_client.exceptions import OpenApiException
    from datadog_api_client.model_utils import (
        ModelComposed,
        ModelNormal,
        ModelSimple,
        UnparsedObject,
        check_validations,
        validate_and_convert_types,
    )

    HAS_DATADOG_API_CLIENT = True
except ImportError:  # the modules report it with missing_required_lib()
    HAS_DATADOG_API_CLIENT = False

NONE_TYPE = type(None)
MAX_SHOWN = 12


def body_models():
    """The request-body model of each kind of object the role writes."""
    from datadog_api_client.v1.model.dashboard import Dashboard
    from datadog_api_client.v1.model.monitor import Monitor
    from datadog_api_client.v2.model.downtime_create_request_attributes import DowntimeCreateRequestAttributes

    return {"dashboard": Dashboard, "monitor": Monitor, "downtime": DowntimeCreateRequestAttributes}


def check_body(body, model_class, path=""):
    """Return the problems of `body` as a list of "path: what is wrong" strings (empty: valid)."""
    problems = []
    _check(body, (model_class,), path, problems)
    if problems:
        return problems
    try:
        model = validate_and_convert_types(body, (model_class,), [_at(path)], True, True, Configuration())
    except (OpenApiException, TypeError, ValueError) as err:
        return ["%s: %s" % (_at(path), err)]
    _find_unparsed(model, path, problems)
    return problems


# ---- walk of the raw body against the models' metadata -------------------------------------


def _check(value, types, path, problems):
    if value is None:
        if NONE_TYPE in types or any(getattr(t, "_nullable", False) for t in types if isinstance(t, type)):
            return
        problems.append("%s: null is not allowed here" % _at(path))
        return
    alternatives = []
    for candidate in types:
        if candidate is NONE_TYPE:
            continue
        found = []
        _check_one(value, candidate, path, found)
        if not found:
            return
        alternatives.append((candidate, found))
    if not alternatives:
        problems.append("%s: expected null" % _at(path))
        return
    shaped = [a for a in alternatives if _shape_matches(value, a[0])]
    if len(shaped) == 1 or len(alternatives) == 1:
        problems.extend((shaped or alternatives)[0][1])
        return
    problems.append("%s: expected %s, got %s" % (_at(path), " or ".join(_describe(t) for t, _ in alternatives),
                                                 _show(value)))


def _check_one(value, expected, path, problems):
    if isinstance(expected, list):
        if not isinstance(value, list):
            problems.append("%s: expected a list, got %s" % (_at(path), _show(value)))
            return
        for index, item in enumerate(value):
            _check(item, tuple(expected), _join(path, index), problems)
    elif isinstance(expected, dict):
        if not isinstance(value, dict):
            problems.append("%s: expected a mapping, got %s" % (_at(path), _show(value)))
            return
        value_types = tuple(expected.values())[0]
        for key, item in value.items():
            _check(item, value_types, _join(path, key), problems)
    elif not isinstance(expected, type):
        return
    elif issubclass(expected, ModelSimple):
        _check_simple(value, expected, path, problems)
    elif issubclass(expected, ModelComposed):
        _check_composed(value, expected, path, problems)
    elif issubclass(expected, ModelNormal):
        _check_normal(value, expected, path, problems)
    else:
        _check_primitive(value, expected, path, problems)


def _check_primitive(value, expected, path, problems):
    ok = True
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is str:
        ok = isinstance(value, str)
    elif expected in (datetime.datetime, datetime.date):
        ok = isinstance(value, (datetime.date, str)) and _parses_as_date(value)
    elif expected is uuid.UUID:
        ok = isinstance(value, str) and _parses_as_uuid(value)
    elif expected in (dict, list):
        ok = isinstance(value, expected)
    if not ok:
        problems.append("%s: expected %s, got %s" % (_at(path), _describe(expected), _show(value)))


def _check_simple(value, model, path, problems):
    value_types = model.openapi_types.get("value", (str,))
    found = []
    _check(value, value_types, path, found)
    if found:
        problems.extend(found)
        return
    allowed = model.allowed_values
    if allowed and value not in allowed:
        problems.append("%s: %s is not allowed (%s accepts: %s)" % (
            _at(path), _show(value), model.__name__, ", ".join(sorted(str(v) for v in allowed))))
        return
    _check_validations(model.validations.get("value"), value, path, problems)


def _check_normal(value, model, path, problems):
    if not isinstance(value, dict):
        problems.append("%s: expected a mapping (%s), got %s" % (_at(path), model.__name__, _show(value)))
        return
    by_key = dict((key, attr) for attr, key in model.attribute_map.items())
    extra_types = model.__dict__.get("additional_properties_type")
    extra_types = extra_types.__get__(None, model) if extra_types is not None else None
    for key in sorted(k for k in _required_keys(model) if k not in value):
        problems.append("%s: required by %s, missing" % (_join(path, key), model.__name__))
    for key, item in value.items():
        attr = by_key.get(key)
        if attr is None:
            if extra_types:
                _check(item, extra_types, _join(path, key), problems)
            else:
                problems.append("%s: unknown field (%s has: %s)" % (
                    _join(path, key), model.__name__, ", ".join(sorted(by_key))))
            continue
        if attr in model.read_only_vars:
            problems.append("%s: set by Datadog (read-only), remove it from the definition" % _join(path, key))
            continue
        before = len(problems)
        _check(item, model.openapi_types[attr], _join(path, key), problems)
        if len(problems) == before:
            _check_validations(model.validations.get(attr), item, _join(path, key), problems)


def _check_composed(value, model, path, problems):
    members = [m for m in model._composed_schemas.get("oneOf", []) if m is not NONE_TYPE]
    by_type = _discriminator(members)
    if by_type and isinstance(value, dict):
        if "type" not in value:
            problems.append("%s: missing (%s needs one of: %s)" % (
                _join(path, "type"), model.__name__, ", ".join(sorted(by_type))))
            return
        members = by_type.get(value["type"]) if isinstance(value["type"], str) else None
        if not members:
            problems.append("%s: unknown type %s (%s accepts: %s)" % (
                _join(path, "type"), _show(value["type"]), model.__name__, ", ".join(sorted(by_type))))
            return
    results = []
    for member in members:
        found = []
        _check_one(value, member, path, found)
        if not found:
            return
        results.append((member, found))
    if len(results) == 1:
        problems.extend(results[0][1])
        return
    shaped = [r for r in results if _shape_matches(value, r[0])]
    best = min(shaped or results, key=lambda r: len(r[1]))
    problems.append("%s: matches none of %s's forms; closest is %s:" % (
        _at(path), model.__name__, _describe(best[0])))
    problems.extend("  " + p for p in best[1])


def _discriminator(members):
    """type value -> the members accepting it, when every member is an object with a `type` enum."""
    by_type = {}
    for member in members:
        values = _type_values(member)
        if not values:
            return {}
        for type_value in values:
            by_type.setdefault(type_value, []).append(member)
    return by_type


def _type_values(member):
    """The `type` values a oneOf member accepts (a nested oneOf: those of its members)."""
    if not isinstance(member, type):
        return set()
    if issubclass(member, ModelComposed):
        values = set()
        for inner in member._composed_schemas.get("oneOf", []):
            inner_values = _type_values(inner)
            if not inner_values:
                return set()
            values |= inner_values
        return values
    if not issubclass(member, ModelNormal):
        return set()
    enums = [t for t in member.openapi_types.get("type", ()) if isinstance(t, type) and issubclass(t, ModelSimple)]
    return set(enums[0].allowed_values) if enums else set()


def _required_keys(model):
    params = inspect.signature(model.__init__).parameters.values()
    names = [p.name for p in params
             if p.default is inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD][1:]
    return [model.attribute_map.get(name, name) for name in names]


def _check_validations(rules, value, path, problems):
    if not rules:
        return
    try:
        check_validations(rules, _at(path), value, Configuration())
    except (OpenApiException, ValueError) as err:
        problems.append("%s: %s" % (_at(path), err))


# ---- what the client's conversion still left unparsed ---------------------------------------


def _find_unparsed(node, path, problems):
    if isinstance(node, UnparsedObject):
        problems.append("%s: the client models could not parse this value" % _at(path))
    elif isinstance(node, ModelSimple):
        if node._unparsed:
            problems.append("%s: %s is not allowed" % (_at(path), _show(node.value)))
    elif isinstance(node, ModelComposed):
        for instance in node._composed_instances:
            _find_unparsed(instance, path, problems)
    elif isinstance(node, ModelNormal):
        for attr, value in node._data_store.items():
            _find_unparsed(value, _join(path, type(node).attribute_map.get(attr, attr)), problems)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _find_unparsed(item, _join(path, index), problems)
    elif isinstance(node, dict):
        for key, item in node.items():
            _find_unparsed(item, _join(path, key), problems)


# ---- helpers -------------------------------------------------------------------------------


def _at(path):
    return path or "(the whole body)"


def _join(path, key):
    """Path of a child: `widgets[0].definition`, from the root path ("" for the body itself)."""
    if isinstance(key, int):
        return "%s[%d]" % (_at(path), key)
    return "%s.%s" % (_at(path), key) if path else str(key)


def _shape_matches(value, expected):
    if isinstance(expected, list):
        return isinstance(value, list)
    if isinstance(expected, dict):
        return isinstance(value, dict)
    if isinstance(expected, type) and issubclass(expected, (ModelNormal, ModelComposed)):
        return isinstance(value, dict)
    return not isinstance(value, (dict, list))


def _describe(expected):
    if isinstance(expected, list):
        return "a list"
    if isinstance(expected, dict):
        return "a mapping"
    if expected is float:
        return "a number"
    names = {bool: "true/false", int: "an integer", str: "a string", datetime.datetime: "a date-time",
             datetime.date: "a date", uuid.UUID: "a UUID", dict: "a mapping", list: "a list"}
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def _show(value):
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _parses_as_date(value):
    if isinstance(value, datetime.date):
        return True
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _parses_as_uuid(value):
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
