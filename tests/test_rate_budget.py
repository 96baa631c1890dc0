"""A cluster's rate budget in the session's real Redis: pacing, sharing, shrinking."""

import threading
import time
import uuid

import pytest
import redis

from tests.helpers import REDIS_KEY_PREFIX
from upserts.rate_budget import BURST_SECONDS, BudgetUnavailable, ClusterBudget, RateCap


@pytest.fixture
def connection(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def budget_key(connection):
    key = f"{REDIS_KEY_PREFIX}:test-budget:{uuid.uuid4().hex}"
    yield key
    connection.delete(key)


def test_requests_beyond_the_burst_are_paced_at_the_byte_rate(connection, budget_key):
    rate = 400_000
    budget = ClusterBudget(connection, key=budget_key, cap=RateCap(bytes_per_second=rate))
    size = 40_000

    started = time.monotonic()
    for _ in range(20):
        budget.take(size)
    elapsed = time.monotonic() - started

    # 800 kB at 400 kB/s is 2 s; the burst lets the first half second's worth, and the
    # request that finds the bucket not yet over it, go at once.
    least = (20 * size - rate * BURST_SECONDS - size) / rate
    assert least - 0.05 <= elapsed <= least + 0.5


def test_the_request_rate_is_capped_as_well(connection, budget_key):
    budget = ClusterBudget(connection, key=budget_key, cap=RateCap(requests_per_second=20))

    started = time.monotonic()
    for _ in range(31):
        budget.take(1)
    elapsed = time.monotonic() - started

    # 30 intervals of 50 ms, less the half second of burst (10 requests).
    assert 0.95 <= elapsed <= 1.5


def test_a_request_larger_than_the_bucket_goes_and_the_next_pays_for_it(
    connection, budget_key, redis_url
):
    cap = RateCap(bytes_per_second=100_000)
    budget = ClusterBudget(connection, key=budget_key, cap=cap)

    assert budget.take(250_000) == 0  # 2.5 s worth, sent at once
    # A worker started afresh (another process, another host) finds the debt in Redis.
    restarted = ClusterBudget(redis.Redis.from_url(redis_url), key=budget_key, cap=cap)
    waited = restarted.take(1_000)

    assert 1.9 <= waited <= 2.3


def test_jobs_sharing_the_budget_together_stay_within_it(connection, budget_key):
    cap = RateCap(requests_per_second=40)
    sent: list[float] = []
    lock = threading.Lock()

    def job() -> None:
        budget = ClusterBudget(connection, key=budget_key, cap=cap)
        for _ in range(20):
            budget.take(1)
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 60 requests at 40/s: 20 in the first half second (the burst), then 40 more at 40/s.
    elapsed = max(sent) - min(sent)
    assert 0.9 <= elapsed <= 1.4


def test_a_rate_limit_answer_halves_the_budget_once_a_second_and_it_grows_back(
    connection, budget_key
):
    budget = ClusterBudget(
        connection, key=budget_key, cap=RateCap(requests_per_second=10), recovery_seconds=2.0
    )
    assert budget.share() == 1.0

    assert budget.shrink() == pytest.approx(0.5, abs=0.01)
    # Other workers answered "rate limited" in the same storm shrink nothing more.
    assert budget.shrink() == pytest.approx(0.5, abs=0.01)
    time.sleep(0.5)
    # Recovery over 2 s: a quarter of the cap comes back in half a second.
    assert budget.share() == pytest.approx(0.75, abs=0.05)
    time.sleep(0.6)
    # Past the shrink interval, another answer halves what there is now.
    assert budget.shrink() == pytest.approx(0.5, abs=0.05)
    time.sleep(1.1)
    assert budget.share() == 1.0


def test_a_shrunk_budget_paces_at_its_share_of_the_cap(connection, budget_key):
    budget = ClusterBudget(connection, key=budget_key, cap=RateCap(requests_per_second=40))
    budget.shrink()

    started = time.monotonic()
    for _ in range(21):
        budget.take(1)
    elapsed = time.monotonic() - started

    # 20 requests a second now: 10 in the burst, then 10 intervals of 50 ms (at the full cap,
    # a quarter of a second).
    assert 0.45 <= elapsed <= 0.75


def test_a_shrink_stretches_what_was_booked_ahead_to_the_new_pace(connection, budget_key):
    budget = ClusterBudget(
        connection,
        key=budget_key,
        cap=RateCap(requests_per_second=10),
        sleep=lambda seconds: None,  # book only: the waits are what the test reads
    )
    for _ in range(20):
        budget.take(1)  # booked up to 2 s ahead

    budget.shrink()

    # Booked 4 s ahead at the new pace: the next request waits that, less the burst.
    assert budget.take(1) == pytest.approx(4.0 - BURST_SECONDS, abs=0.1)


def test_the_budget_is_kept_as_long_as_its_bookings_reach(connection, budget_key):
    budget = ClusterBudget(
        connection, key=budget_key, cap=RateCap(bytes_per_second=1), sleep=lambda seconds: None
    )

    budget.take(1_000)  # paid for in 1 000 s

    assert connection.pttl(budget_key) > 1_000_000


def test_redis_not_answering_is_a_retryable_error_and_a_lost_shrink_is_no_error():
    gone = redis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    budget = ClusterBudget(gone, key="nowhere", cap=RateCap(requests_per_second=1))

    with pytest.raises(BudgetUnavailable, match="could not be read from Redis"):
        budget.take(1)
    assert budget.shrink() == 1.0
