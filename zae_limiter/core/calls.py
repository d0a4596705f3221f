"""The instructions a flow yields to its driver, and the errors a transport raises into a flow.

Flows (see `flows.py`) are generators: they yield a `Call`, `Parallel` or `Sleep`, and receive the
response (or have the transport's exception thrown in). The sync and async drivers only execute them,
so both APIs share every decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generator, TypeVar

if TYPE_CHECKING:
    from ..state.gate import Gate

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One DynamoDB request in wire format (typed attribute values), as boto3's low-level client takes it."""

    operation: str
    request: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Parallel:
    """Several independent calls; the flow receives a list of responses or exceptions, in order."""

    calls: tuple[Call, ...]


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Await:
    """Wait until `gate` opens, at most `timeout` seconds."""

    gate: "Gate"
    timeout: float


Instruction = Call | Parallel | Sleep | Await
Flow = Generator[Instruction, Any, T]


class ConditionFailed(Exception):
    """A conditional write was refused; `item` is the item as it stood (ALL_OLD), if returned."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


class TransactionCanceled(Exception):
    """A transaction was cancelled; one (code, item) per action, code 'None' where that action passed."""

    def __init__(self, reasons: list[tuple[str, dict[str, Any] | None]]) -> None:
        super().__init__("transaction cancelled: " + ", ".join(code for code, _ in reasons))
        self.reasons = reasons
