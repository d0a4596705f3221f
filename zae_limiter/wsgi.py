"""`RateLimitMiddleware` for WSGI apps (Flask, Django, Bottle, plain WSGI) on a `SyncRateLimiter`:
the same rules, answers and headers as zae_limiter.asgi.

    from zae_limiter.wsgi import RateLimitMiddleware, Rule
    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=SyncRateLimiter(...), rules=[Rule(...)])

Key and consume functions receive a request view with `headers`, `method`, `url.path`, `client.host`,
`state` and `environ`. The lease is at `environ["zae_limiter.lease"]`. The lease is settled when the
server closes the response iterable (PEP 3333: after the last chunk is sent), so an app whose body is a
generator can `lease.adjust(...)` after its last `yield`. Refunded when the app raises (while called or
while its body is iterated) or answers a status in `refund_statuses` (default 500-599).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

from .core.errors import ValidationError
from .http_headers import HttpAnswer
from .web_admission import REFUND_STATUSES, Admission, admit_sync, check_options, finish_sync
from .web_rules import Rule, WSGIRequestView, api_key, check_rules, client_address, first_match, user, wsgi_path

__all__ = ["RateLimitMiddleware", "Rule", "api_key", "client_address", "user", "ENVIRON_KEY"]

ENVIRON_KEY = "zae_limiter.lease"
_REASONS = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable"}


def _status_line(answer: HttpAnswer) -> str:
    return f"{answer.status} {_REASONS.get(answer.status, '')}".rstrip()


class _SettledBody:
    """The app's response iterable, passed through; settles the lease when the server closes it."""

    def __init__(self, body: Iterable[bytes], settle: Callable[[BaseException | None], None]) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._settle = settle
        self._error: BaseException | None = None

    def __iter__(self) -> "_SettledBody":
        self._iterator = iter(self._body)
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._iterator)  # type: ignore[arg-type]
        except StopIteration:
            raise
        except BaseException as error:
            self._error = error
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()  # a generator's `finally` (where an adjust may be) runs here
        except BaseException as error:
            self._error = self._error or error
            raise
        finally:
            self._settle(self._error)


class RateLimitMiddleware:
    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        limiter: Any,
        rules: Sequence[Rule],
        *,
        refund_on_error: bool = True,
        refund_statuses: Any = REFUND_STATUSES,
        unavailable_retry_after: int = 1,
    ) -> None:
        if limiter is None or not hasattr(limiter, "acquire"):
            raise ValidationError("limiter", "must be a zae_limiter.SyncRateLimiter")
        self.app = app
        self.limiter = limiter
        self.rules = check_rules(rules)
        self.refund_on_error = bool(refund_on_error)
        self.refund_statuses, self.unavailable_retry_after = check_options(refund_statuses, unavailable_retry_after)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        rule = first_match(self.rules, environ.get("REQUEST_METHOD", ""), wsgi_path(environ))
        if rule is None:
            return self.app(environ, start_response)
        admission = admit_sync(self.limiter, rule, WSGIRequestView(environ), self.unavailable_retry_after)
        if admission.answer is not None:
            start_response(_status_line(admission.answer), admission.answer.headers)
            return [admission.answer.body]
        environ[ENVIRON_KEY] = admission.lease
        status: list[int] = []

        def start_with_headers(status_line: str, headers: list, exc_info: Any = None) -> Any:
            status[:] = [int(status_line.split(" ", 1)[0])]
            return start_response(status_line, [*headers, *admission.headers], exc_info)

        try:
            body = self.app(environ, start_with_headers)
        except BaseException as error:
            self._settle(admission, error, status)
            raise
        return _SettledBody(body, lambda error: self._settle(admission, error, status))

    def _settle(self, admission: Admission, error: BaseException | None, status: list[int]) -> None:
        if error is not None:
            finish_sync(admission, error if self.refund_on_error else None, None, ())
        else:
            finish_sync(admission, None, status[0] if status else None, self.refund_statuses)
