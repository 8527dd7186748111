"""Stand-in for Datadog's request-body checks (the 400 answers), built on datadog-api-client's models.

The client's models raise on wrong types and missing required fields, but a bad enum value or an
unknown oneOf member (a widget type Datadog doesn't know) only marks the model `_unparsed`; this
module walks the parsed model to find those and names the path of the bad field. Dashboards also
get Datadog's own extra rules: widget definitions refuse unknown keys, and dashboard tags accept
only `team:` keys.
"""

from datadog_api_client import Configuration
from datadog_api_client.exceptions import OpenApiException
from datadog_api_client.model_utils import (
    ModelComposed,
    ModelNormal,
    ModelSimple,
    UnparsedObject,
    validate_and_convert_types,
)
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest
from datadog_api_client.v2.model.downtime_create_request import DowntimeCreateRequest
from datadog_api_client.v2.model.downtime_update_request import DowntimeUpdateRequest

MODELS = {
    "dashboard": Dashboard,
    "monitor": Monitor,
    "monitor_update": MonitorUpdateRequest,
    "downtime_create": DowntimeCreateRequest,
    "downtime_update": DowntimeUpdateRequest,
}


def problems(kind, body):
    """Return the list of problems Datadog would answer 400 with (empty when the body is fine)."""
    if not isinstance(body, dict):
        return ["body: a JSON object is required"]
    model_class = MODELS[kind]
    try:
        model = validate_and_convert_types(body, (model_class,), ["body"], True, True, Configuration())
    except (OpenApiException, TypeError, ValueError) as err:
        return [str(err)]
    found = []
    _walk(model, "body", (model_class,), found, strict_keys=False)
    if kind == "dashboard":
        found.extend(_dashboard_rules(body))
    return found


def _dashboard_rules(body):
    found = []
    for tag in body.get("tags") or []:
        if not str(tag).startswith("team:"):
            found.append("Invalid tag format. Valid tag keys are: team. (body.tags: %r)" % tag)
    return found


def _walk(node, path, types, found, strict_keys):
    if isinstance(node, UnparsedObject):
        _dig_unparsed(node._data_store, path, types, found)
    elif isinstance(node, ModelSimple):
        if node._unparsed:
            allowed = ", ".join(sorted(str(v) for v in node.allowed_values))
            found.append("%s: invalid value %r (expected one of: %s)" % (path, node.value, allowed))
    elif isinstance(node, ModelComposed):
        for instance in node._composed_instances:
            _walk(instance, path, (type(node),), found, strict_keys)
    elif isinstance(node, ModelNormal):
        _walk_normal(node, path, found, strict_keys)
    elif isinstance(node, list):
        item_types = _item_types(types)
        for index, item in enumerate(node):
            _walk(item, "%s[%d]" % (path, index), item_types, found, strict_keys)
    elif isinstance(node, dict):
        for key, value in node.items():
            _walk(value, "%s.%s" % (path, key), (), found, strict_keys)


def _walk_normal(node, path, found, strict_keys):
    cls = type(node)
    # Widget definitions are where Datadog refuses unknown keys.
    strict = strict_keys or cls.__name__.endswith("WidgetDefinition")
    before = len(found)
    for attr, value in node._data_store.items():
        key = cls.attribute_map.get(attr)
        if key is None:
            if strict:
                found.append("%s.%s: unknown field" % (path, attr))
            continue
        _walk(value, "%s.%s" % (path, key), cls.openapi_types.get(attr, ()), found, strict)
    if node._unparsed and len(found) == before:
        found.append("%s: does not match %s" % (path, cls.__name__))


def _dig_unparsed(raw, path, types, found):
    """An UnparsedObject stands where a oneOf matched nothing: find out why, with the type field."""
    composed = [t for t in types if isinstance(t, type) and issubclass(t, ModelComposed)]
    normal = [t for t in types if isinstance(t, type) and issubclass(t, ModelNormal)]
    if not composed and normal and isinstance(raw, dict):
        _parse_and_walk(raw, path, normal[0], found)
        return
    if not composed or not isinstance(raw, dict):
        found.append("%s: does not match the expected schema" % path)
        return
    members = [c for c in composed[0]._composed_schemas.get("oneOf", []) if isinstance(c, type)]
    by_type = {}
    for member in members:
        type_classes = getattr(member, "openapi_types", {}).get("type", ())
        for type_class in type_classes:
            for value in getattr(type_class, "allowed_values", ()):
                by_type[value] = member
    if by_type and "type" in raw:
        member = by_type.get(raw["type"])
        if member is None:
            found.append("%s.type: unknown type %r" % (path, raw["type"]))
            return
        _parse_and_walk(raw, path, member, found)
        return
    found.append("%s: does not match any of %s" % (path, ", ".join(m.__name__ for m in members)))


def _parse_and_walk(raw, path, model_class, found):
    try:
        model = validate_and_convert_types(raw, (model_class,), [path], True, True, Configuration())
    except (OpenApiException, TypeError, ValueError) as err:
        found.append(str(err))
        return
    _walk(model, path, (model_class,), found, strict_keys=False)


def _item_types(types):
    for candidate in types:
        if isinstance(candidate, list):
            return tuple(candidate)
    return ()
