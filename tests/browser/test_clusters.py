"""Registering a cluster in a real browser: the form, the connection test, the schema."""

import re

import pytest

from tests.browser.pages import Screenshots, log_in
from tests.factories import BOOK_FIELDS, make_user_with_role
from upserts import roles

pytestmark = [pytest.mark.milvus, pytest.mark.django_db(transaction=True)]


def test_a_cluster_admin_registers_milvus_tests_it_and_reads_a_schema(
    page, live_server, milvus, make_collection
):
    from playwright.sync_api import expect

    screenshot = Screenshots("cluster")
    books = make_collection(BOOK_FIELDS)
    make_user_with_role("ada", roles.CLUSTER_ADMINS)

    # Log in: the console sends a visitor to the login page first.
    page.goto(f"{live_server.url}/jobs/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/jobs/"))
    screenshot(page, "login")
    log_in(page, live_server, "ada")
    expect(page.locator("h1")).to_have_text("Jobs")

    # Register the embedded Milvus as a cluster.
    page.click("nav >> text=Clusters")
    page.click("text=Add cluster")
    page.fill("#id_name", "embedded-milvus")
    page.fill("#id_base_url", milvus.url)
    page.select_option("#id_api_version", "v1")
    screenshot(page, "cluster-form")
    page.click("button:has-text('Add cluster')")
    expect(page.locator("h1")).to_contain_text("embedded-milvus")

    # Test the connection: the latency and the collections found, without a page load.
    page.click("button:has-text('Test connection')")
    result = page.locator("#test-result")
    expect(result).to_contain_text("connected")
    expect(result).to_contain_text(books)
    expect(page.locator("#last-test")).to_contain_text("reachable")
    screenshot(page, "cluster-tested")

    # The collection browser shows the schema as Milvus describes it.
    result.get_by_role("link", name=books).click()
    expect(page.locator("h1")).to_contain_text(books)
    expect(page.locator("table")).to_contain_text("FloatVector")
    expect(page.locator("table")).to_contain_text("dim 4")
    screenshot(page, "collection-schema")
