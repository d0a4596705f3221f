"""The HTTP answers, as pure functions: the draft's RateLimit-Policy and RateLimit fields
(draft-ietf-httpapi-ratelimit-headers-11) for token buckets, Retry-After, and RFC 9457 problem bodies.
Expected numbers come from the bucket's definition: capacity C refilled at R tokens per P seconds has
an emission interval P/R, and an empty bucket refills in C*P/R seconds."""

from __future__ import annotations

import json

import pytest

from zae_limiter import Limit, LimitStatus, RateLimitExceeded, ResourceDisabled
from zae_limiter.http_headers import (
    LimitState,
    policy_field,
    quota,
    ratelimit_field,
    refused,
    remaining,
    seconds_to_next_token,
    sf_string,
    unavailable,
    disabled,
    window_seconds,
)

RPM = Limit.per_minute("rpm", 5)  # one token every 12 s
TPM = Limit.per_minute("tpm", 10_000, burst=50_000)  # 50,000 tokens, refilled in 300 s


@pytest.mark.parametrize("limit, q, w", [
    (RPM, 5, 60),
    (TPM, 50_000, 300),
    (Limit.per_second("rps", 10), 10, 1),
    (Limit.per_hour("rph", 1000, burst=1500), 1500, 5400),
    (Limit.per_day("rpd", 86_400), 86_400, 86_400),
    (Limit("tiny", 1, 10, 1), 1, 1),  # refills in 0.1 s: the draft's window is a whole second, at least 1
    (Limit("half", 0.5, 1, 60), 0, 30),
])
def test_quota_and_window(limit: Limit, q: int, w: int) -> None:
    assert (quota(limit), window_seconds(limit)) == (q, w)


@pytest.mark.parametrize("available, r", [(5, 5), (4.0, 4), (3.9999999, 4), (3.5, 3), (0.999, 0), (0, 0), (-2.5, 0)])
def test_remaining_is_whole_tokens_never_negative(available: float, r: int) -> None:
    assert remaining(available) == r


@pytest.mark.parametrize("available, t", [
    (4.0, 12),   # one token short of 5: it comes after one interval
    (4.5, 6),    # half a token short of 5
    (0.25, 9),   # r = 0 until 1 token: 0.75 of an interval
    (-3.5, 54),  # in debt: r = 0 until 1 token, 4.5 tokens away
    (5, 12),     # full: cannot grow; a token taken now comes back after one interval
    (4.9999999, 12),  # full within the thousandths the limiter counts in
])
def test_effective_window_is_the_wait_for_the_next_whole_token(available: float, t: int) -> None:
    assert seconds_to_next_token(RPM, available) == t


def test_within_the_window_the_client_can_use_no_more_than_remaining() -> None:
    # The draft's definition of t, checked on the bucket itself: after t - 1 seconds of refill the
    # whole tokens have not grown past r; after t they have.
    for available in (0.0, 0.3, 1.0, 2.7, 4.0, -1.2):
        r, t = remaining(available), seconds_to_next_token(RPM, available)
        assert remaining(available + (t - 1) / 12) == r
        assert remaining(available + t / 12) == r + 1


def test_policy_field_has_one_policy_per_limit() -> None:
    assert policy_field([RPM, TPM]) == '"rpm";q=5;w=60, "tpm";q=50000;w=300'


def test_ratelimit_field_reports_the_binding_level_per_name() -> None:
    parent_rpm = Limit.per_minute("rpm", 10)
    states = [LimitState(RPM, 4.0), LimitState(TPM, 49_500.0), LimitState(parent_rpm, 2.5)]
    # Under cascade the parent's rpm leaves 2 (and its next token is 0.5 of 6 s away): that binds.
    assert ratelimit_field(states) == '"rpm";r=2;t=3, "tpm";r=49500;t=1'


def test_structured_field_strings() -> None:
    assert sf_string("rpm") == '"rpm"'
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        sf_string("caf\u00e9")


def _status(name: str, available: float, requested: float, capacity: float, retry: float) -> LimitStatus:
    return LimitStatus("key-1", "chat", name, available, requested, capacity, retry)


def test_a_refusal_is_429_with_retry_after_the_fields_and_a_quota_exceeded_problem() -> None:
    error = RateLimitExceeded([_status("rpm", 0.0, 1, 5, 12.0), _status("tpm", 40_000.0, 500, 50_000, 0.0)])
    answer = refused(error, [RPM, TPM], [LimitState(RPM, 0.0), LimitState(TPM, 40_000.0)])
    headers = dict(answer.headers)
    assert answer.status == 429
    assert headers["retry-after"] == "12"
    assert headers["ratelimit-policy"] == '"rpm";q=5;w=60, "tpm";q=50000;w=300'
    assert headers["ratelimit"] == '"rpm";r=0;t=12, "tpm";r=40000;t=1'
    assert headers["content-type"] == "application/problem+json"
    assert headers["content-length"] == str(len(answer.body))
    body = json.loads(answer.body)
    assert body == {
        "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
        "title": "Request cannot be satisfied as assigned quota has been exceeded",
        "status": 429,
        "detail": str(error),
        "violated-policies": ["rpm"],
        **error.as_dict(),
    }


def test_retry_after_is_never_earlier_than_the_effective_window() -> None:
    # The draft: Retry-After SHOULD NOT be earlier than the end of the effective window. For a refusal
    # of one token on an empty bucket both are the wait for the next token.
    for available in (0.0, 0.2, 0.75):
        wait = (1 - available) * 12
        error = RateLimitExceeded([_status("rpm", available, 1, 5, wait)])
        headers = dict(refused(error, [RPM], [LimitState(RPM, available)]).headers)
        assert int(headers["retry-after"]) == int(headers["ratelimit"].split("t=")[1])


def test_disabled_is_403_without_retry_after() -> None:
    error = ResourceDisabled("key-1", "chat", "entity_resource")
    answer = disabled(error)
    assert answer.status == 403
    assert "retry-after" not in dict(answer.headers)
    assert json.loads(answer.body) == {
        "type": "about:blank", "title": "Forbidden", "status": 403, "detail": str(error), **error.as_dict(),
    }


def test_unavailable_is_503_with_retry_after() -> None:
    answer = unavailable(5)
    assert answer.status == 503 and dict(answer.headers)["retry-after"] == "5"
    assert json.loads(answer.body)["error"] == "rate_limiter_unavailable"
