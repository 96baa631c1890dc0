"""One rate budget per cluster, shared by every job on every worker through Redis.

Zilliz Cloud throttles upserts per cluster by plan. Jobs that each kept their own pace would
together overrun it and draw a storm of rate-limit answers, so each request first takes its
bytes and itself from the cluster's budget. The budget is a generic cell-rate algorithm (a
token bucket kept as one time: when the requests booked so far are paid for) in one Lua
script, run on Redis' own clock: hosts whose clocks differ share it fairly, and a restarted
worker finds it as it was left.

Each request books its place when it asks and waits for it, so requests go in the order they
asked and jobs share the cap in proportion to the requests each keeps in flight. A request
larger than the bucket still goes in its turn, and the ones after it wait until its bytes are
paid for: a cap below one batch a second slows a job rather than stopping it. A rate-limit
answer halves the budget (at most once per ``SHRINK_INTERVAL``, however many workers saw
it); it grows back linearly, to the cap in ``recovery_seconds``.

No Django here: the caller gives the Redis connection and the keys.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from upserts.milvus.errors import RetryableClusterError

logger = logging.getLogger(__name__)

# How long each kind of budget may run ahead of its rate: a burst of this many seconds' worth.
BURST_SECONDS = 0.5
# However often workers are answered "rate limited", the budget halves once per this interval.
SHRINK_INTERVAL = 1.0
# The budget never shrinks below this share of the cap.
SMALLEST_SHARE = 1 / 16
# A job still counts as waiting this long after its last wait: it is being paced.
WAITING_MARK_SECONDS = 3.0

# Every script reads the share of the cap the budget has now (1 unless a rate-limit answer
# shrank it) from the fields ``share`` and ``share_at``.
_SHARE_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local share = tonumber(redis.call('HGET', KEYS[1], 'share')) or 1
local share_at = tonumber(redis.call('HGET', KEYS[1], 'share_at')) or now
share = math.min(1, share + math.max(0, now - share_at) / tonumber(ARGV[1]))
"""

# ARGV: recovery seconds, time to live (ms), burst seconds, then (rate, cost) for bytes and for
# requests, a rate of 0 meaning no cap. Books the request's place and returns the seconds to
# wait for it: requests are served in the order they asked, whichever job or host asked.
_TAKE = (
    _SHARE_NOW
    + """
local burst = tonumber(ARGV[3])
local fields = {'bytes_at', 'requests_at'}
local at = {}
local wait = 0
for i = 1, 2 do
  if tonumber(ARGV[2 + 2 * i]) > 0 then
    at[i] = math.max(tonumber(redis.call('HGET', KEYS[1], fields[i])) or now, now)
    wait = math.max(wait, at[i] - now - burst)
  end
end
local send = now + wait
local furthest = now
for i, next_at in pairs(at) do
  local cost = tonumber(ARGV[3 + 2 * i]) / (tonumber(ARGV[2 + 2 * i]) * share)
  next_at = math.max(next_at, send) + cost
  furthest = math.max(furthest, next_at)
  redis.call('HSET', KEYS[1], fields[i], string.format('%.6f', next_at))
end
-- Kept at least as long as the bookings reach, or a later request would start afresh.
redis.call('PEXPIRE', KEYS[1], math.ceil((furthest - now) * 1000) + tonumber(ARGV[2]))
return string.format('%.6f', wait)
"""
)

# ARGV: recovery seconds, time to live (ms), shrink interval, smallest share. Returns the share.
_SHRINK = (
    _SHARE_NOW
    + """
local shrunk_at = tonumber(redis.call('HGET', KEYS[1], 'shrunk_at')) or 0
if now - shrunk_at >= tonumber(ARGV[3]) then
  local shrunk = math.max(tonumber(ARGV[4]), share / 2)
  -- What is booked ahead was booked at the old share: stretch it to the new one, so the
  -- requests that ask next wait as if it had been booked at the new share.
  for _, name in ipairs({'bytes_at', 'requests_at'}) do
    local at = tonumber(redis.call('HGET', KEYS[1], name))
    if at and at > now then
      redis.call('HSET', KEYS[1], name, string.format('%.6f', now + (at - now) * share / shrunk))
    end
  end
  share = shrunk
  redis.call('HSET', KEYS[1], 'share', string.format('%.6f', share),
    'share_at', string.format('%.6f', now), 'shrunk_at', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[1], math.max(redis.call('PTTL', KEYS[1]), tonumber(ARGV[2])))
end
return string.format('%.6f', share)
"""
)

# ARGV: recovery seconds. Returns the share.
_SHARE = _SHARE_NOW + "return string.format('%.6f', share)\n"


@dataclass(frozen=True)
class RateCap:
    """What a cluster takes per second from all jobs together; None for no cap."""

    bytes_per_second: float | None = None
    requests_per_second: float | None = None

    @property
    def is_capped(self) -> bool:
        return bool(self.bytes_per_second or self.requests_per_second)


class BudgetUnavailable(RetryableClusterError):
    """Redis, which holds the budget, did not answer: wait and ask again, as for a cluster
    that did not answer, rather than send past a cap no one can check."""


class ClusterBudget:
    """The budget of one cluster in Redis, as one job's requests take from it.

    ``key`` holds the budget (shared by every job on the cluster); ``waiting_key``, when
    given, is set while the job waits, so a page can say the job is being paced. ``sleep``
    waits for a request's turn; one that returns early (an event's ``wait``) lets a stopping
    job stop waiting.
    """

    def __init__(
        self,
        connection: redis.Redis,
        *,
        key: str,
        cap: RateCap,
        waiting_key: str = "",
        recovery_seconds: float = 60.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if recovery_seconds <= 0:
            raise ValueError("recovery_seconds must be more than 0")
        self.redis = connection
        self.key = key
        self.cap = cap
        self.waiting_key = waiting_key
        self.recovery_seconds = recovery_seconds
        self.sleep = sleep
        self._take = connection.register_script(_TAKE)
        self._shrink = connection.register_script(_SHRINK)
        self._share = connection.register_script(_SHARE)
        # Long enough that a quiet minute does not forget a shrink or a debt.
        self._ttl_ms = int(max(recovery_seconds, 60.0) * 2000)

    def take(self, size_bytes: int) -> float:
        """Book room for one request of ``size_bytes``, wait for its turn, and return the
        seconds waited. Raises BudgetUnavailable when Redis does not answer."""
        try:
            wait = float(
                self._take(
                    keys=[self.key],
                    args=[
                        self.recovery_seconds,
                        self._ttl_ms,
                        BURST_SECONDS,
                        self.cap.bytes_per_second or 0,
                        size_bytes,
                        self.cap.requests_per_second or 0,
                        1,
                    ],
                )
            )
            if wait > 0 and self.waiting_key:
                marked_ms = int((wait + WAITING_MARK_SECONDS) * 1000)
                self.redis.set(self.waiting_key, "1", px=marked_ms)
        except redis.RedisError as exc:
            raise BudgetUnavailable(
                f"The cluster's rate budget could not be read from Redis ({exc}); retry later"
            ) from exc
        if wait <= 0:
            return 0.0
        self.sleep(wait)
        return wait

    def shrink(self) -> float:
        """The cluster answered "rate limited": halve the budget for a while; the share of
        the cap it has now (1 when Redis does not answer: the request is retried anyway)."""
        try:
            share = self._shrink(
                keys=[self.key],
                args=[self.recovery_seconds, self._ttl_ms, SHRINK_INTERVAL, SMALLEST_SHARE],
            )
        except redis.RedisError as exc:
            logger.warning("could not shrink the rate budget %s: %s", self.key, exc)
            return 1.0
        return float(share)

    def share(self) -> float:
        """The share of the cap the budget has now: 1 unless rate-limit answers shrank it."""
        return float(self._share(keys=[self.key], args=[self.recovery_seconds]))
