"""A limits file (YAML) or its parsed document -> `LimitsSpec`, checked whole before anything is read or
written: first against the JSON Schema the package ships (`schema.json`, also usable by editors), then
the rules the schema cannot say (limit text, ids, metadata, cascade without parent, parent cycles within
the file, schedules as the runtime checks them: cron expressions and entries firing at the same instant). Each problem is reported with the path of its key (`entities.key-1.limits.gpt-4`): every
problem of the file's shape at once, then (once the shape is right) every problem of its values.

Needs PyYAML and jsonschema: the `limits` extra."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..core.entities import _check_metadata
from ..core.errors import ValidationError, ZaeLimiterError
from ..core.limits import format_limits, parse_limits
from ..core.schedules import check_schedule
from ..core.schema import DEFAULT_RESOURCE
from ..core.validation import MAX_ID_LENGTH, check_id
from .model import EntitySpec, LimitsSpec, StoredLimits, stored

MISSING_EXTRA = "limits files need the limits extra: pip install 'zae-limiter[limits]'"


class Index(int):
    """A list index in a key's path: `schedule[1]`, where a mapping's key (even a number) is `.key`."""


class SpecError(ValidationError):
    """A limits file was refused. `problems`: (path, message) of every bad key, sorted by path."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "limits file") -> None:
        self.problems = sorted(set(problems))
        self.source = source
        first_path, first_message = self.problems[0]
        super().__init__(first_path, first_message)
        self.args = (self.text(),)

    def text(self) -> str:
        lines = [f"{path}: {message}" if path else message for path, message in self.problems]
        if len(lines) == 1:
            return f"{self.source}: {lines[0]}"
        return f"{self.source}: {len(lines)} problems\n" + "\n".join(f"  {line}" for line in lines)

    def __str__(self) -> str:
        return self.text()


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise ZaeLimiterError(MISSING_EXTRA) from None


@functools.cache
def json_schema() -> dict[str, Any]:
    """The limits file's JSON Schema (draft 2020-12), as shipped in the package."""
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8"))


# -- YAML --------------------------------------------------------------------------------------------
@functools.cache
def _loader() -> Any:
    yaml = _import("yaml")

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice: plain YAML keeps the last, silently."""

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"a key must be a scalar, got {key!r}", key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


def load_text(text: str, source: str = "limits file") -> LimitsSpec:
    """Parse and check a limits file's text."""
    yaml = _import("yaml")
    try:
        document = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError([("", f"not valid YAML: {where}{problem}")], source) from None
    if document is None:
        raise SpecError([("", "the file is empty (a file that declares nothing is `{}`)")], source)
    return from_document(document, source)


def load_file(path: "str | Path") -> LimitsSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError([("", f"cannot read it: {getattr(error, 'strerror', None) or error}")], str(path)) from None
    return load_text(text, str(path))


# -- the document --------------------------------------------------------------------------------------
def from_document(document: Any, source: str = "limits spec") -> LimitsSpec:
    """Check a parsed document (as YAML or JSON gives it) and build the spec. Raises SpecError."""
    problems = list(_schema_problems(document))
    if problems:
        raise SpecError(problems, source)
    problems = []
    spec = _build(document, problems)
    problems.extend(_cycles(spec))
    if problems:
        raise SpecError(problems, source)
    return spec


def path_text(parts: "list[Any] | tuple[Any, ...]") -> str:
    """`entities.key-1.limits.gpt-4`, `resources.gpt-4.schedule[1]`; a key holding a dot or a space, or
    that is not a string, is quoted."""
    out = ""
    for part in parts:
        if isinstance(part, Index):
            out += f"[{int(part)}]"
            continue
        text = str(part)
        quote = not isinstance(part, str) or not text or any(c in text for c in ". \t[]")
        out += ("." if out else "") + (json.dumps(text) if quote else text)
    return out


def _typed_path(document: Any, path: "list[Any]") -> list[Any]:
    """A schema error's path with its list indexes marked, walking the document it came from."""
    typed, node = [], document
    for part in path:
        if isinstance(node, list):
            typed.append(Index(part))
        else:
            typed.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return typed


_TYPE_NAMES = {"string": "a string", "object": "a mapping", "boolean": "true or false", "array": "a list", "null": "empty"}


def _found(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


def _schema_problems(document: Any) -> Iterator[tuple[str, str]]:
    jsonschema = _import("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    for error in validator.iter_errors(document):
        path = _typed_path(document, list(error.absolute_path))
        kind = error.validator
        if "propertyNames" in error.absolute_schema_path:
            # The key itself is bad: jsonschema reports the check of the key at the mapping's path.
            key = error.instance
            try:
                check_id("key", key)
                message = error.message
            except ValidationError as bad:
                message = str(bad)[len("key: "):]
            hint = " (quote it in YAML)" if not isinstance(key, str) else ""
            yield path_text(path + [key]), f"not a valid name: {message}{hint}"
        elif kind == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            for key in sorted((k for k in error.instance if k not in allowed), key=str):
                yield path_text(path + [key]), f"unknown key; expected one of: {', '.join(allowed)}"
        elif kind == "type":
            expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            if "string" in expected and "object" in expected:
                wanted = "limit text such as rpm=100/min (or {limits: TEXT})"
            else:
                wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected if t != "null")
            hint = " (quote it in YAML)" if "string" in expected and isinstance(error.instance, (bool, int, float)) else ""
            yield path_text(path), f"must be {wanted}, got {_found(error.instance)}{hint}"
        elif kind == "required" and path and isinstance(path[-1], Index):
            yield path_text(path), "a schedule entry needs `cron: EXPRESSION` and `limits: TEXT`"
        elif kind == "required":
            yield path_text(path), "the long form needs `limits: TEXT`"
        elif kind == "anyOf" and isinstance(error.instance, Mapping):
            yield path_text(path), "the long form needs `limits: TEXT` or `disabled: true|false`"
        elif kind == "dependentRequired":
            yield path_text(path + ["schedule"]), "a schedule needs `limits: TEXT` next to it (in force until an entry fires)"
        elif kind == "const":
            yield path_text(path), f"must be {error.validator_value}"
        elif kind == "minLength":
            yield path_text(path), "must not be empty"
        elif kind == "maxLength":
            yield path_text(path), f"must be at most {error.validator_value} characters"
        else:
            yield path_text(path), error.message


def _parse(text: str, field: str, problems: list[tuple[str, str]]) -> Any:
    try:
        return parse_limits(text, field)
    except ValidationError as error:
        message = str(error)
        problems.append((field, message[len(field) + 2:] if message.startswith(field + ": ") else message))
        return None


def _level(value: Any, path: list[Any], problems: list[tuple[str, str]]) -> tuple[StoredLimits | None, bool | None]:
    """A limit value (text, or the long form) -> its stored limits (None: it names none) and its
    disabled flag (None: it does not say)."""
    if not isinstance(value, Mapping):
        value = {"limits": value}
    if "limits" not in value:
        return None, value.get("disabled")
    limits = _parse(value["limits"], path_text(path), problems)
    entries = _schedule(value.get("schedule"), path + ["schedule"], problems)
    if limits is None or entries is None:
        return None, value.get("disabled")
    return stored(limits, entries), value.get("disabled")


def _schedule(entries: Any, path: list[Any], problems: list[tuple[str, str]]) -> Any:
    """`[{cron, limits}, ...]` -> [(cron, [Limit, ...]), ...], checked by the runtime's own rules (the
    same call `set_limits(..., schedule=...)` makes). None when a problem was found."""
    if not entries:
        return ()
    parsed = [(entry["cron"], _parse(entry["limits"], path_text(path + [Index(i), "limits"]), problems))
              for i, entry in enumerate(entries)]
    if any(limits is None for _, limits in parsed):
        return None
    field = path_text(path)
    try:
        return check_schedule(parsed, field)
    except ValidationError as error:
        problems.append((error.field, str(error)[len(error.field) + 2:]))
        return None


def _check(problems: list[tuple[str, str]], field: str, check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ValidationError as error:
        problems.append((field, str(error)[len(error.field) + 2:]))
        return None


def _levels(values: Mapping[str, Any], where: list[Any], problems: list[tuple[str, str]]) -> tuple[dict, dict]:
    """Limit values by resource -> their stored limits and their disabled flags, each where named."""
    limits, flags = {}, {}
    for resource, value in values.items():
        _check(problems, path_text(where + [resource]), check_id, "resource", resource)
        level, disabled = _level(value, where + [resource], problems)
        if level is not None:
            limits[resource] = level
        if disabled is not None:
            flags[resource] = disabled
    return limits, flags


def _build(document: Mapping[str, Any], problems: list[tuple[str, str]]) -> LimitsSpec:
    system = _level(document["system"], ["system"], problems)[0] if "system" in document else None
    resources, flags = _levels(document.get("resources") or {}, ["resources"], problems)
    entities = {}
    for entity_id, body in (document.get("entities") or {}).items():
        entities[entity_id] = _entity(entity_id, body or {}, problems)
    return LimitsSpec(system, resources, entities, flags)


def _entity(entity_id: str, body: Mapping[str, Any], problems: list[tuple[str, str]]) -> EntitySpec:
    where = ["entities", entity_id]
    _check(problems, path_text(where), check_id, "entity id", entity_id)
    parent = body.get("parent")
    if parent is not None:
        _check(problems, path_text(where + ["parent"]), check_id, "parent", parent)
        if parent == entity_id:
            problems.append((path_text(where + ["parent"]), "an entity cannot be its own parent"))
    cascade = bool(body.get("cascade", False))
    if cascade and parent is None:
        problems.append((path_text(where + ["cascade"]), "cascade: true needs a parent"))
    name = body.get("name")
    if name is not None and len(name) > MAX_ID_LENGTH:
        problems.append((path_text(where + ["name"]), f"must be at most {MAX_ID_LENGTH} characters"))
    metadata = _check(problems, path_text(where + ["metadata"]), _check_metadata, body.get("metadata")) or {}
    limits, flags = _levels(body.get("limits") or {}, where + ["limits"], problems)
    if DEFAULT_RESOURCE in flags:  # the `_default_` item's flag is the whole entity's (core/stored_limits.py)
        problems.append((path_text(where + ["limits", DEFAULT_RESOURCE, "disabled"]),
                         f"{DEFAULT_RESOURCE}'s flag is the whole entity's: use `disabled` on {path_text(where)}"))
    return EntitySpec(entity_id, name, parent, cascade, metadata, limits, body.get("disabled"), flags)


def _cycles(spec: LimitsSpec) -> Iterator[tuple[str, str]]:
    """Parent chains within the file that come back to where they started (the plan checks the chains
    that go through the table)."""
    for entity_id in spec.entities:
        chain = [entity_id]
        parent = spec.entities[entity_id].parent_id
        while parent in spec.entities and parent not in chain:
            chain.append(parent)
            parent = spec.entities[parent].parent_id
        if parent == entity_id and len(chain) > 1:
            yield path_text(["entities", entity_id, "parent"]), "parents form a cycle: " + " -> ".join(chain + [entity_id])


# -- back to a document ------------------------------------------------------------------------------
def to_document(spec: LimitsSpec) -> dict[str, Any]:
    """The spec as a document `from_document` reads back to an equal spec: limit text in its canonical
    form, keys sorted, nothing absent spelled out. What a Pulumi resource keeps as its inputs."""
    document: dict[str, Any] = {}
    if spec.system is not None:
        document["system"] = level_document(spec.system, None)
    resources = sorted(set(spec.resources) | set(spec.disabled_resources))
    if resources:
        document["resources"] = {r: level_document(spec.resources.get(r), spec.disabled_resources.get(r)) for r in resources}
    if spec.entities:
        document["entities"] = {e: entity_document(spec.entities[e]) for e in sorted(spec.entities)}
    return document


def entity_document(entity: EntitySpec) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if entity.name is not None:
        body["name"] = entity.name
    if entity.parent_id is not None:
        body["parent"] = entity.parent_id
    if entity.cascade:
        body["cascade"] = True
    if entity.metadata:
        body["metadata"] = dict(sorted(entity.metadata.items()))
    if entity.disabled is not None:
        body["disabled"] = entity.disabled
    resources = sorted(set(entity.limits) | set(entity.disabled_for))
    if resources:
        body["limits"] = {r: level_document(entity.limits.get(r), entity.disabled_for.get(r)) for r in resources}
    return body


def level_document(level: StoredLimits | None, disabled: bool | None) -> Any:
    """A limit value as the file writes it: the text alone when that says it all, else the long form."""
    if level is not None and not level.schedule and disabled is None:
        return format_limits(level.limits)
    body: dict[str, Any] = {}
    if level is not None:
        body["limits"] = format_limits(level.limits)
        if level.schedule:
            body["schedule"] = [{"cron": cron, "limits": format_limits(limits)} for cron, limits in level.schedule]
    if disabled is not None:
        body["disabled"] = disabled
    return body
