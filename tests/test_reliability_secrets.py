"""Nothing the limiter raises or logs carries a secret: not the secret key, not the session token, not a
request signature. AWS echoes the expected canonical request, session token included, in its
InvalidSignatureException; the proxy plays that part with the limiter's real headers.

Plus a static check over every logging call in the runtime and the aggregator."""

from __future__ import annotations

import ast
import logging
import traceback
import uuid
from pathlib import Path

import pytest
from botocore.config import Config

from fault_proxy import FaultProxy
from zae_limiter import Limit, RateLimiter, SyncRateLimiter
from zae_limiter.core.errors import StorageError
from zae_limiter.local import ensure_table

from conftest import AsyncAdapter

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjSESSIONTOKEN/with+slashes=="
LIMITS = [Limit.per_minute("rpm", 10)]


def everything_said(error: BaseException) -> str:
    """The exception as a caller could ever print it: str, repr, the whole chained traceback, `.cause`."""
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    cause = getattr(error, "cause", None)
    if cause is not None:
        parts += [str(cause), repr(cause), "".join(traceback.format_exception(cause))]
    return "\n".join(parts)


@pytest.fixture
def temporary_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize("lean", [True, False], ids=["data-plane", "boto3"])
def test_a_rejected_signature_leaks_no_secret_in_errors_or_logs(endpoint_url, temporary_credentials, caplog, api, lean):
    table = f"sec_{uuid.uuid4().hex[:8]}"
    ensure_table(table, endpoint_url=endpoint_url, region="us-east-1")
    with FaultProxy(endpoint_url) as proxy:
        kwargs = dict(table_name=table, region="us-east-1", endpoint_url=proxy.url, lean_hot_path=lean, on_unavailable="allow",
                      boto_config=Config(read_timeout=10, retries={"total_max_attempts": 2}))
        limiter = SyncRateLimiter(**kwargs) if api == "sync" else AsyncAdapter(RateLimiter(**kwargs))
        said = []
        try:
            with caplog.at_level(logging.DEBUG, logger="zae_limiter"):
                proxy.fail(None, "badsig", times=1)  # the acquire's first request
                with pytest.raises(StorageError, match="InvalidSignatureException") as raised:
                    with limiter.acquire("k", "api", LIMITS, consume={"rpm": 1}):
                        pass
                said.append(everything_said(raised.value))
                proxy.fail("Query", "badsig", times=1)  # a boto3 call whatever the hot path (set_limits' first)
                with pytest.raises(StorageError) as raised:
                    limiter.set_limits("k", LIMITS)
                said.append(everything_said(raised.value))
                with pytest.raises(KeyError):  # a refund that fails is logged with its traceback
                    with limiter.acquire("k", "api", LIMITS, consume={"rpm": 1}):
                        proxy.fail("UpdateItem", "badsig")
                        raise KeyError("the caller's")
        finally:
            limiter.close()
    assert "refund of a lease on k/api failed" in caplog.text
    assert [op for op, what in proxy.seen if what == "badsig"][-1] == "UpdateItem"
    said.append(caplog.text)
    text = "\n".join(said)
    assert "x-amz-security-token:<redacted>" in text  # the echo was there, and was redacted
    for secret in (SECRET_KEY, SESSION_TOKEN, SESSION_TOKEN[:20]):
        assert secret not in text
    assert "Signature=<redacted>" in text and "Signature=0" not in text


# Words that name what a log line must never carry. A logging call whose arguments mention one fails the
# test: whoever adds it must show it is safe by naming it differently (or redacting it).
SECRET_WORDS = ("secret", "token", "credential", "authorization", "authorisation", "password", "signature",
                "header", "signer", "body", "request")
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def logging_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS:
            target = node.func.value
            if isinstance(target, ast.Name) and target.id in ("log", "logger", "logging", "LOG"):
                yield node


def test_no_logging_call_is_handed_a_secret():
    found = 0
    offenders = []
    for path in sorted([*ROOT.joinpath("zae_limiter").rglob("*.py"), *ROOT.joinpath("aggregator").rglob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        for call in logging_calls(tree):
            found += 1
            for arg in [*call.args[1:], *(k.value for k in call.keywords if k.arg != "exc_info")]:
                names = [n.id for n in ast.walk(arg) if isinstance(n, ast.Name)]
                names += [n.attr for n in ast.walk(arg) if isinstance(n, ast.Attribute)]
                bad = [n for n in names if any(word in n.lower() for word in SECRET_WORDS)]
                if bad:
                    offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}: {bad}")
    assert found >= 5, "the scan must see the project's logging calls"
    assert not offenders, offenders
