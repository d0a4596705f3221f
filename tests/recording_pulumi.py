"""A stand-in for the Pulumi CLI (DESIGN section 10): a `PulumiCommand` subclass that records every
command the Automation API runs, with its environment, and answers the way the engine does (stack
select/init, config, up/preview/destroy with engine events in the event log, outputs, history, rm).
It never runs a program or touches a cloud: it checks the configuration we hand the engine."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

from pulumi.automation import PulumiCommand
from pulumi.automation._cmd import CommandResult
from pulumi.automation._minimum_version import _MINIMUM_VERSION
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

# Below 3.205 the Automation API reads engine events from a file (--event-log PATH), which this stand-in
# writes; newer CLIs stream them over gRPC instead.
FILE_EVENT_LOG_VERSION = VersionInfo(3, 200, 0)
assert FILE_EVENT_LOG_VERSION >= _MINIMUM_VERSION

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000000Z"

COMPONENT_RESOURCES = [
    ("zae-limiter:index:ZaeLimiter", "zae-limiter"),
    ("aws:dynamodb/table:Table", "zae-limiter-table"),
    ("aws:lambda/function:Function", "zae-limiter-aggregator"),
]


@dataclass
class Recorded:
    args: list[str]
    env: dict[str, str]
    cwd: str

    @property
    def verb(self) -> str:
        words = [a for a in self.args if not a.startswith("-")]
        return " ".join(words[:2]) if words and words[0] in ("stack", "config") else (words[0] if words else "")


class RecordingPulumiCommand(PulumiCommand):
    def __init__(self, outputs: Mapping[str, Any] | None = None, fail: Mapping[str, str] | None = None) -> None:
        # No `pulumi version` call: there is no CLI here.
        self.command = "pulumi"
        self.version = FILE_EVENT_LOG_VERSION
        self.calls: list[Recorded] = []
        self.stacks: dict[str, dict[str, Any]] = {}
        self.config: dict[str, dict[str, str]] = {}
        self.deployed_outputs = dict(outputs or {"table_name": "rate_limits", "table_arn": "arn:aws:dynamodb:us-east-1:123456789012:table/rate_limits"})
        self.fail = dict(fail or {})

    # -- helpers for tests ------------------------------------------------------------------------
    def verbs(self) -> list[str]:
        return [call.verb for call in self.calls]

    def call(self, verb: str) -> Recorded:
        return next(c for c in self.calls if c.verb == verb)

    # -- the engine's answers ---------------------------------------------------------------------
    def run(self, args: list[str], cwd: str, additional_env: Mapping[str, str], on_output: Any = None, on_error: Any = None) -> CommandResult:
        args = [a for a in args if a != "--non-interactive"]
        recorded = Recorded(list(args), dict(additional_env), cwd)
        self.calls.append(recorded)
        if recorded.verb in self.fail:
            raise create_command_error(CommandResult(stdout="", stderr=self.fail[recorded.verb], code=255))
        stack = self._value(args, "--stack")
        handler = getattr(self, "_" + recorded.verb.replace(" ", "_").replace("-", "_"), None)
        out = handler(args, stack) if handler else ""
        return CommandResult(stdout=out or "", stderr="", code=0)

    @staticmethod
    def _value(args: list[str], flag: str) -> str | None:
        return args[args.index(flag) + 1] if flag in args else None

    def _missing(self, stack: str | None) -> None:
        raise create_command_error(CommandResult(stdout="", stderr=f"error: no stack named '{stack}' found", code=255))

    def _stack_select(self, args: list[str], stack: str | None) -> None:
        if stack not in self.stacks:
            self._missing(stack)

    def _stack_init(self, args: list[str], stack: str | None) -> None:
        name = [a for a in args if not a.startswith("-")][2]
        self.stacks[name] = {"deployed": False, "updated": None}

    def _config_set_all(self, args: list[str], stack: str | None) -> None:
        values = self.config.setdefault(stack or "", {})
        for i, arg in enumerate(args):
            if arg in ("--plaintext", "--secret"):
                key, _, value = args[i + 1].partition("=")
                values[key] = value

    def _events(self, args: list[str], events: list[dict[str, Any]]) -> None:
        path = self._value(args, "--event-log")
        if not path:
            return
        with open(path, "a", encoding="utf-8") as log:
            for sequence, event in enumerate(events, start=1):
                log.write(json.dumps({"sequence": sequence, "timestamp": int(time.time()), **event}) + "\n")

    def _resource_events(self, stack: str | None, op: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for type_, name in COMPONENT_RESOURCES:
            meta = {"op": op, "urn": f"urn:pulumi:{stack}::zae-limiter::{type_}::{name}", "type": type_, "provider": ""}
            events.append({"resourcePreEvent": {"metadata": meta}})
            events.append({"resOutputsEvent": {"metadata": meta}})
        return events

    def _up(self, args: list[str], stack: str | None) -> None:
        self._events(args, self._resource_events(stack, "create") + [{"summaryEvent": {"resourceChanges": {"create": len(COMPONENT_RESOURCES)}}}])
        self.stacks[stack or ""] = {"deployed": True, "updated": time.strftime(TIME_FORMAT, time.gmtime())}

    def _preview(self, args: list[str], stack: str | None) -> None:
        self._events(args, self._resource_events(stack, "create") + [{"summaryEvent": {"resourceChanges": {"create": len(COMPONENT_RESOURCES)}}}])

    def _destroy(self, args: list[str], stack: str | None) -> None:
        self._events(args, self._resource_events(stack, "delete") + [{"summaryEvent": {"resourceChanges": {"delete": len(COMPONENT_RESOURCES)}}}])
        self.stacks[stack or ""]["deployed"] = False

    def _stack_rm(self, args: list[str], stack: str | None) -> None:
        name = [a for a in args if not a.startswith("-")][2]
        self.stacks.pop(name, None)

    def _stack_output(self, args: list[str], stack: str | None) -> str:
        deployed = self.stacks.get(stack or "", {}).get("deployed")
        return json.dumps(self.deployed_outputs if deployed else {})

    def _stack_history(self, args: list[str], stack: str | None) -> str:
        updated = self.stacks.get(stack or "", {}).get("updated")
        if not updated:
            return "[]"
        return json.dumps([{"kind": "update", "startTime": updated, "endTime": updated, "message": "", "environment": {}, "config": {}, "result": "succeeded", "version": 1}])

    def _stack_ls(self, args: list[str], stack: str | None) -> str:
        return json.dumps([
            {"name": name, "current": False, "updateInProgress": False, "resourceCount": len(COMPONENT_RESOURCES) + 2 if s["deployed"] else 0, **({"lastUpdate": s["updated"]} if s["updated"] else {})}
            for name, s in self.stacks.items()
        ])
