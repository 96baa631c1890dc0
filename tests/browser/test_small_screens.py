"""The pages on a phone's screen, and the friendly 404, in a real browser."""

import pytest

from tests.browser.pages import Screenshots, log_in
from tests.factories import make_cluster, make_job, make_user_with_role
from upserts import roles

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_job_pages_fit_a_phone_and_a_missing_job_says_so(page, live_server):
    from playwright.sync_api import expect

    screenshot = Screenshots("small")
    make_user_with_role("vera", roles.VIEWERS)
    job = make_job(make_cluster("prod"), original_filename="books.jsonl")
    log_in(page, live_server, "vera")

    # The same pages on a phone, and the friendly 404.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    screenshot(page, "job-on-a-phone", full_page=False)
    page.goto(f"{live_server.url}/jobs/")
    screenshot(page, "jobs-on-a-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/jobs/999999/")
    expect(page.locator("h1")).to_have_text("There is nothing here")
    screenshot(page, "not-found")
