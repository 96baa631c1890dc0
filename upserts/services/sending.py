"""Sending one batch: retries with backoff, the cluster's rate budget, and finding the bad
rows of a rejected batch.

No Django here: the outcome is a value that the pipeline commits.
"""

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from upserts.milvus.errors import (
    DataRejectedError,
    FatalTargetError,
    RateLimitedError,
    RetryableClusterError,
)
from upserts.milvus.transport import ClusterTransport, UpsertEncoder, UpsertResult

# Once this many single rows of a batch were refused in a row, all with the same message and
# none accepted, the cluster is refusing the collection, not the rows (the validation before
# sending has already caught what a row can get wrong). Stop bisecting and stop the job.
TARGET_PROBLEM_ROWS = 8


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class SendBudget(Protocol):
    """What all senders to a cluster may send per second (``upserts.rate_budget``)."""

    def take(self, size_bytes: int) -> float:
        """Wait for room for one request of that size; the seconds waited. May raise
        RetryableClusterError when the budget cannot be read."""

    def shrink(self) -> float:
        """The cluster said "rate limited": send less for a while."""


@dataclass(frozen=True)
class RowRejection:
    index: int  # position of the row in the batch
    reason: str


@dataclass
class BatchOutcome:
    upsert_count: int = 0
    upsert_ids: list[str | int] = field(default_factory=list)
    rejections: list[RowRejection] = field(default_factory=list)
    requests: int = 0
    http_status: int | None = None
    code: int | None = None
    message: str = ""
    elapsed_ms: float = 0.0
    # Of the elapsed time, what the requests waited for the cluster's rate budget.
    budget_wait_ms: float = 0.0


class SendingStopped(Exception):
    """The job is stopping (a cancel): a batch still waiting for its turn in the cluster's
    budget is not sent, and nothing of it is recorded."""


class TargetRefusesEveryRow(FatalTargetError):
    """Every row tried alone was refused the same way: the collection is the problem."""


def send_batch(
    transport: ClusterTransport,
    *,
    encoder: UpsertEncoder,
    rows: Sequence[Any],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    request: Any = None,
    budget: SendBudget | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> BatchOutcome:
    """Upsert the rows; a data rejection is split in halves until each bad row is isolated.

    ``request`` is the rows' request when the caller built it already (``encoder.request``).
    Every request, retries and halves included, first takes its bytes from ``budget``; a
    batch whose first request is waiting for it when ``stopping()`` turns true raises
    SendingStopped unsent.

    Raises FatalTargetError at once, and RetryableClusterError once the retry budget of one
    request is spent; nothing of a batch that raises is committed, and re-sending it later is
    harmless because upsert is idempotent per primary key.
    """
    outcome = BatchOutcome()
    started = time.monotonic()
    state = _BisectState()
    sender = _Sender(transport, encoder, policy, sleep, outcome, budget, stopping)
    sender.send_part(rows, 0, state, request)
    if len(rows) > 1 and len(outcome.rejections) == len(rows):
        _raise_target_problem(outcome.rejections[0].reason, len(rows))
    outcome.elapsed_ms = (time.monotonic() - started) * 1000
    if outcome.rejections and not outcome.message:
        outcome.message = outcome.rejections[0].reason
    return outcome


@dataclass
class _BisectState:
    accepted_any: bool = False
    lone_rejections: int = 0


def _raise_target_problem(reason: str, tried: int) -> None:
    raise TargetRefusesEveryRow(
        f"The cluster refused each of {tried} rows sent alone, all with the same answer, so "
        f"the collection itself cannot take these upserts: {reason}"
    )


@dataclass
class _Sender:
    transport: ClusterTransport
    encoder: UpsertEncoder
    policy: RetryPolicy
    sleep: Callable[[float], None]
    outcome: BatchOutcome
    budget: SendBudget | None = None
    stopping: Callable[[], bool] = lambda: False

    def send_part(
        self, rows: Sequence[Any], offset: int, state: _BisectState, request: Any = None
    ) -> None:
        outcome = self.outcome
        try:
            if request is None:
                request = self.encoder.request(rows)
            result = self._with_retries(request)
        except DataRejectedError as exc:
            outcome.code = exc.code
            outcome.http_status = exc.http_status
            if len(rows) == 1:
                reason = exc.cluster_message or exc.message
                outcome.rejections.append(RowRejection(index=offset, reason=reason))
                first = outcome.rejections[0].reason
                state.lone_rejections = state.lone_rejections + 1 if reason == first else 0
                if not state.accepted_any and state.lone_rejections >= TARGET_PROBLEM_ROWS:
                    _raise_target_problem(reason, state.lone_rejections)
                return
            middle = len(rows) // 2
            self.send_part(rows[:middle], offset, state)
            self.send_part(rows[middle:], offset + middle, state)
            return
        state.accepted_any = True
        outcome.upsert_count += result.upsert_count
        outcome.upsert_ids.extend(result.upsert_ids)
        outcome.http_status = result.http_status
        if outcome.code is None:
            outcome.code = result.code

    def _with_retries(self, request: Any) -> UpsertResult:
        attempt = 0
        while True:
            attempt += 1
            first = self.outcome.requests == 0
            self.outcome.requests += 1
            try:
                if self.budget is not None:
                    if first and self.stopping():
                        raise SendingStopped()
                    # Redis not answering is retried like the cluster not answering.
                    waited = self.budget.take(self.encoder.request_size(request))
                    self.outcome.budget_wait_ms += waited * 1000
                    if first and self.stopping():
                        raise SendingStopped()
                return self.transport.send_upsert(request)
            except RetryableClusterError as exc:
                if isinstance(exc, RateLimitedError) and self.budget is not None:
                    self.budget.shrink()
                if attempt >= self.policy.max_attempts:
                    raise RetryableClusterError(
                        f"{exc.message} (gave up after {attempt} attempts)",
                        code=exc.code,
                        http_status=exc.http_status,
                    ) from exc
                self.sleep(self.policy.delay(attempt))
