"""The GCRA math on integers: refill, capacity, debt, waits and exact cancellation."""

from zae_limiter import Limit
from zae_limiter.core.bucket import admits, available, cost_ns, next_tat, wait_ns

S = 10**9
NOW = 1_000 * S


def test_cost_of_tokens_is_the_refill_time_rounded_up():
    rpm = Limit.per_minute("rpm", 100)
    assert cost_ns(rpm, 1000) == 600_000_000  # one token = 0.6 s
    third = Limit("x", 3, 3, 1)
    assert cost_ns(third, 1000) == 333_333_334  # rounded up: never undercharge
    assert cost_ns(third, -1000) == -333_333_333  # a give-back rounds down: never credited more than returned
    assert rpm.tau_ns == 60 * S


def test_never_used_bucket_is_full_and_admits_up_to_capacity():
    rpm = Limit.per_minute("rpm", 100)
    assert available(rpm, None, NOW) == 100
    assert admits(rpm, None, NOW, 100_000)
    assert not admits(rpm, None, NOW, 100_001)


def test_consumption_refills_continuously():
    rpm = Limit.per_minute("rpm", 60)  # 1 token per second
    tat = next_tat(rpm, None, NOW, 60_000)  # take everything
    assert available(rpm, tat, NOW) == 0
    assert available(rpm, tat, NOW + S // 2) == 0.5  # fractional refill counts
    assert available(rpm, tat, NOW + 10 * S) == 10
    assert available(rpm, tat, NOW + 600 * S) == 60  # never above capacity
    assert wait_ns(rpm, tat, NOW, 3_000) == 3 * S
    assert wait_ns(rpm, tat, NOW + 5 * S, 3_000) == 0


def test_burst_capacity_above_the_rate():
    tpm = Limit.per_minute("tpm", 10_000, burst=50_000)
    assert tpm.capacity == 50_000 and tpm.refill_amount == 10_000
    tat = next_tat(tpm, None, NOW, 50_000_000)
    assert available(tpm, tat, NOW) == 0
    assert round(available(tpm, tat, NOW + 60 * S), 6) == 10_000


def test_debt_makes_available_negative_and_delays_admission():
    rps = Limit.per_second("rps", 10)
    tat = next_tat(rps, None, NOW, 10_000) + cost_ns(rps, 5_000)  # 5 tokens of debt
    assert available(rps, tat, NOW) == -5
    assert not admits(rps, tat, NOW, 0)
    assert wait_ns(rps, tat, NOW, 1_000) == 600_000_000
