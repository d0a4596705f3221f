"""Showing the engine's progress: a model fed by Automation API engine events, and its rich rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

# The component, the stack and the provider are bookkeeping, not resources a user asked for.
HIDDEN_TYPES = ("pulumi:pulumi:Stack", "pulumi:providers:")
OP_STYLE = {"create": "green", "update": "yellow", "delete": "red", "replace": "magenta", "same": "dim"}


@dataclass
class ResourceRow:
    name: str
    type: str
    op: str
    status: str = "running"  # running | done | failed


@dataclass
class EngineProgress:
    """What the engine has reported so far. `apply` takes one EngineEvent; no I/O here."""

    rows: dict[str, ResourceRow] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    finished: bool = False

    def apply(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            self._row(pre.metadata)
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata is not None:
            self._row(done.metadata).status = "done"
        failed = getattr(event, "res_op_failed_event", None)
        if failed is not None and failed.metadata is not None:
            self._row(failed.metadata).status = "failed"
        diagnostic = getattr(event, "diagnostic_event", None)
        if diagnostic is not None and diagnostic.severity == "error":
            message = diagnostic.message.strip()
            if message and message not in self.errors:
                self.errors.append(message)
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self.finished = True
            self.changes = {str(getattr(op, "value", op)): n for op, n in (summary.resource_changes or {}).items()}

    def _row(self, meta: Any) -> ResourceRow:
        row = self.rows.get(meta.urn)
        if row is None:
            row = self.rows[meta.urn] = ResourceRow(
                name=meta.urn.split("::")[-1], type=meta.type, op=str(getattr(meta.op, "value", meta.op))
            )
        return row

    def visible(self) -> list[ResourceRow]:
        return [r for r in self.rows.values() if not r.type.startswith(HIDDEN_TYPES)]

    def render(self) -> Group:
        table = Table(show_header=True, header_style="bold", expand=False)
        table.add_column("operation")
        table.add_column("resource")
        table.add_column("type", style="dim")
        table.add_column("status")
        for row in self.visible():
            status = {"running": "[yellow]…[/]", "done": "[green]done[/]", "failed": "[red]failed[/]"}[row.status]
            table.add_row(Text(row.op, style=OP_STYLE.get(row.op, "")), row.name, row.type, status)
        parts: list[Any] = [table]
        if self.changes:
            parts.append(Text("changes: " + ", ".join(f"{op} {n}" for op, n in sorted(self.changes.items()))))
        for message in self.errors:
            parts.append(Text(message, style="red"))
        return Group(*parts)


class LiveProgress:
    """A live table while the engine works (on a terminal); the final table otherwise."""

    def __init__(self, console: Console) -> None:
        self.model = EngineProgress()
        self._live = Live(self.model.render(), console=console, refresh_per_second=8, transient=False)

    def __call__(self, event: Any) -> None:
        self.model.apply(event)
        self._live.update(self.model.render())

    def __enter__(self) -> "LiveProgress":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.update(self.model.render())
        self._live.__exit__(*exc)
