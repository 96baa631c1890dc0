"""A file sent in parts from the upload page in a real browser: the page is reloaded mid-way,
the same file chosen again resumes where it stopped, and the finished upload is previewed."""

import hashlib
import re

import pytest

from tests.browser.pages import Screenshots, log_in
from tests.factories import make_user_with_role
from tests.helpers import wait_until
from upserts import roles
from upserts.models import AuditAction, AuditEvent, ResumableUpload, UpsertJob

pytestmark = [pytest.mark.django_db(transaction=True)]

MiB = 1024 * 1024


def throttle(page, bytes_per_second: float):
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def test_an_upload_in_parts_resumes_after_a_reload(page, live_server, books_cluster, tmp_path):
    from playwright.sync_api import expect

    screenshot = Screenshots("resumable")
    line = b'{"book_id": %d, "title": "Book", "emb": [0.5, 0.5, 0.5, 0.5]}\n'
    content = b"".join(line % i for i in range(1, 700_000))  # about 40 MB: five parts
    path = tmp_path / "books.jsonl"
    path.write_bytes(content)
    make_user_with_role("ada", roles.OPERATORS)
    log_in(page, live_server, "ada")
    new_upload = f"{live_server.url}/uploads/new/?cluster={books_cluster.pk}&collection=books"
    page.goto(new_upload)
    throttle(page, 3 * MiB)

    page.set_input_files("#id_file", str(path))
    page.click("button:has-text('Upload and preview')")
    expect(page.locator("#upload-controls")).to_be_visible()
    expect(page.locator("#upload-progress-text")).to_contain_text("MB/s")
    expect(page.locator("#upload-pause")).to_be_visible()
    expect(page.locator("#upload-continue")).to_be_hidden()
    page.click("#upload-pause")
    expect(page.locator("#upload-progress-text")).to_contain_text("Paused")
    expect(page.locator("#upload-continue")).to_be_visible()
    paused_at = ResumableUpload.objects.get().offset
    page.click("#upload-continue")
    expect(page.locator("#upload-pause")).to_be_visible()
    wait_until(
        lambda: ResumableUpload.objects.get().offset >= max(16 * MiB, paused_at + 8 * MiB),
        timeout=60,
        interval=0.1,
    )
    screenshot(page, "sending")
    page.reload()

    # The same file chosen again: the page finds its unfinished upload and resumes it.
    throttle(page, -1)
    page.set_input_files("#id_file", str(path))
    expect(page.locator("#upload-resume")).to_contain_text("An unfinished upload of books.jsonl")
    screenshot(page, "resume-offered")
    stored_before = ResumableUpload.objects.get().offset
    page.click("button:has-text('Upload and preview')")
    page.wait_for_url(re.compile(r"/uploads/\d+/preview/"), timeout=60_000)
    screenshot(page, "preview")

    upload = ResumableUpload.objects.get()  # one upload: resumed, not begun again
    job = UpsertJob.objects.get()
    assert upload.status == "submitted" and upload.job == job
    assert job.sha256 == hashlib.sha256(content).hexdigest() and job.size_bytes == len(content)
    starts = [
        event.details["from"]
        for event in AuditEvent.objects.filter(action=AuditAction.UPLOAD_PART_RECEIVED).order_by(
            "pk"
        )
    ]
    assert stored_before in starts and stored_before > 0  # the part after the reload
    assert starts == sorted(starts) and len(starts) == len(set(starts))
    expect(page.locator("h1")).to_contain_text("Preview")
