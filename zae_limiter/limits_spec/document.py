"""A limits file (YAML) or its parsed document -> `LimitsSpec`, checked whole before anything is read or
written: first against the JSON Schema the package ships (`schema.json`, also usable by editors), then
the rules the schema cannot say (limit text, ids, metadata, cascade without parent, parent cycles within
the file). Each problem is reported with the path of its key (`entities.key-1.limits.gpt-4`): every
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
from ..core.validation import MAX_ID_LENGTH, check_id
from .model import EntitySpec, LimitSet, LimitsSpec, limit_set

MISSING_EXTRA = "limits files need the limits extra: pip install 'zae-limiter[limits]'"
RESERVED = {"disabled", "schedule"}  # the quota model's keys (DESIGN 16): refused until it lands


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
    """`entities.key-1.limits.gpt-4`; a key holding a dot or a space is quoted."""
    out = []
    for part in parts:
        text = str(part)
        quote = not isinstance(part, str) or not text or any(c in text for c in ". \t")
        out.append(json.dumps(text) if quote else text)
    return ".".join(out)


_TYPE_NAMES = {"string": "a string", "object": "a mapping", "boolean": "true or false", "null": "empty"}


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
        path = list(error.absolute_path)
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
                yield path_text(path + [key]), f"unknown key; expected one of: {', '.join(a for a in allowed if a not in RESERVED)}"
        elif kind == "not" and path and path[-1] in RESERVED:
            yield path_text(path), "reserved for the quota model (disabled, schedule); not supported by this version"
        elif kind == "type":
            expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            if "string" in expected and "object" in expected:
                wanted = "limit text such as rpm=100/min (or {limits: TEXT})"
            else:
                wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected if t != "null")
            hint = " (quote it in YAML)" if "string" in expected and isinstance(error.instance, (bool, int, float)) else ""
            yield path_text(path), f"must be {wanted}, got {_found(error.instance)}{hint}"
        elif kind == "required":
            yield path_text(path), "the long form needs `limits: TEXT`"
        elif kind == "const":
            yield path_text(path), f"must be {error.validator_value}"
        elif kind == "minLength":
            yield path_text(path), "must not be empty"
        elif kind == "maxLength":
            yield path_text(path), f"must be at most {error.validator_value} characters"
        else:
            yield path_text(path), error.message


def _limits(value: Any, path: list[Any], problems: list[tuple[str, str]]) -> LimitSet | None:
    text = value["limits"] if isinstance(value, Mapping) else value
    field = path_text(path)
    try:
        return limit_set(parse_limits(text, field))
    except ValidationError as error:
        message = str(error)
        problems.append((field, message[len(field) + 2:] if message.startswith(field + ": ") else message))
        return None


def _check(problems: list[tuple[str, str]], field: str, check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ValidationError as error:
        problems.append((field, str(error)[len(error.field) + 2:]))
        return None


def _build(document: Mapping[str, Any], problems: list[tuple[str, str]]) -> LimitsSpec:
    system = _limits(document["system"], ["system"], problems) if "system" in document else None
    resources = {}
    for resource, value in (document.get("resources") or {}).items():
        _check(problems, path_text(["resources", resource]), check_id, "resource", resource)
        resources[resource] = _limits(value, ["resources", resource], problems)
    entities = {}
    for entity_id, body in (document.get("entities") or {}).items():
        entities[entity_id] = _entity(entity_id, body or {}, problems)
    return LimitsSpec(system, resources, entities)  # type: ignore[arg-type]  (only returned without problems)


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
    limits = {}
    for resource, value in (body.get("limits") or {}).items():
        _check(problems, path_text(where + ["limits", resource]), check_id, "resource", resource)
        limits[resource] = _limits(value, where + ["limits", resource], problems)
    return EntitySpec(entity_id, name, parent, cascade, metadata, limits)  # type: ignore[arg-type]


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
        document["system"] = format_limits(spec.system)
    if spec.resources:
        document["resources"] = {r: format_limits(spec.resources[r]) for r in sorted(spec.resources)}
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
    if entity.limits:
        body["limits"] = {r: format_limits(entity.limits[r]) for r in sorted(entity.limits)}
    return body
