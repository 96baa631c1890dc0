"""Batch results are committed in file order on their own thread; after a failure, none is."""

from concurrent.futures import CancelledError, Future

import pytest

from upserts.services.pipeline import PendingBatch, _Committer
from upserts.services.sending import BatchOutcome


def sent(outcome: BatchOutcome | None = None) -> Future[BatchOutcome]:
    future: Future[BatchOutcome] = Future()
    future.set_result(outcome or BatchOutcome())
    return future


def test_commits_run_in_order_and_a_failure_skips_every_later_one():
    committed = []

    def commit(batch: PendingBatch, outcome: BatchOutcome) -> None:
        if batch.sequence == 3:
            raise RuntimeError("lease lost")
        committed.append(batch.sequence)

    committer = _Committer(commit)
    committer.start()
    late: Future[BatchOutcome] = Future()
    futures = [
        committer.submit(PendingBatch(sequence=1, first_row=1), sent()),
        # The second batch's answer comes after the third was queued: the third still waits.
        committer.submit(PendingBatch(sequence=2, first_row=2), late),
        committer.submit(PendingBatch(sequence=3, first_row=3), sent()),
        committer.submit(PendingBatch(sequence=4, first_row=4), sent()),
    ]
    late.set_result(BatchOutcome())
    committer.close()

    assert committed == [1, 2]
    assert futures[0].result() is None and futures[1].result() is None
    with pytest.raises(RuntimeError, match="lease lost"):
        futures[2].result()
    with pytest.raises(CancelledError):
        futures[3].result()


def test_a_send_that_failed_is_raised_where_its_commit_is_awaited():
    committed = []
    failed: Future[BatchOutcome] = Future()
    failed.set_exception(ConnectionError("cluster gone"))
    committer = _Committer(lambda batch, outcome: committed.append(batch.sequence))
    committer.start()

    first = committer.submit(PendingBatch(sequence=1, first_row=1), failed)
    second = committer.submit(PendingBatch(sequence=2, first_row=2), sent())
    committer.close()

    assert committed == []
    with pytest.raises(ConnectionError):
        first.result()
    assert second.cancelled()
