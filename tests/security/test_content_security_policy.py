"""Every page carries a Content-Security-Policy that runs scripts only from the console's own
files, and no template needs more: no inline script, event handler or style anywhere."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.factories import make_cluster, make_job, make_user

pytestmark = pytest.mark.django_db

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"
TEMPLATES = sorted(TEMPLATES_DIR.rglob("*.html"))
TAG = re.compile(r"<[a-zA-Z][^<>]*>")

PAGES = {
    "login": lambda: reverse("login"),
    "dashboard": lambda: reverse("dashboard"),
    "jobs": lambda: reverse("job_list"),
    "job": lambda: reverse("job_detail", args=[make_job().pk]),
    "new upload": lambda: reverse("upload_new"),
    "clusters": lambda: reverse("cluster_list"),
    "cluster": lambda: reverse("cluster_detail", args=[make_cluster().pk]),
    "audit": lambda: reverse("audit_list"),
    "api docs": lambda: reverse("api:docs"),
    "api docs script": lambda: reverse("api:docs") + "?script=",
    "admin login": lambda: reverse("admin:login"),
    "admin index": lambda: reverse("admin:index"),
    "admin change list": lambda: reverse("admin:upserts_clusterendpoint_changelist"),
    "admin add form": lambda: reverse("admin:upserts_clusterendpoint_add"),
    "not found": lambda: "/no-such-page/",
}
ANONYMOUS_PAGES = {"login", "admin login"}


def get(page: str):
    client = Client()
    if page not in ANONYMOUS_PAGES:
        client.force_login(make_user("root", superuser=True))
    response = client.get(PAGES[page]())
    assert response.status_code in (200, 404)
    return response


def policy_of(response) -> dict[str, list[str]]:
    directives = [part.split() for part in response["Content-Security-Policy"].split(";")]
    return {name: sources for name, *sources in directives if name}


def inline_scripts(html: str) -> list[str]:
    return [tag for tag in re.findall(r"<script\b[^>]*>", html) if " src=" not in tag]


def handler_attributes(html: str) -> list[str]:
    handler = re.compile(r"\s(?:on[a-z]+|(?:data-)?hx-on\S*)\s*=", re.IGNORECASE)
    return [tag for tag in TAG.findall(html) if handler.search(tag)]


def inline_styles(html: str) -> list[str]:
    attribute = re.compile(r"\sstyle\s*=", re.IGNORECASE)
    blocks = re.findall(r"<style\b[^>]*>", html, re.IGNORECASE)
    return blocks + [tag for tag in TAG.findall(html) if attribute.search(tag)]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_allows_scripts_and_styles_from_its_own_files_only(page):
    policy = policy_of(get(page))

    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


def test_htmx_is_told_to_inject_no_style_and_eval_nothing(client):
    page = client.get(reverse("login")).content.decode()

    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert config, "base.html configures htmx"
    assert json.loads(config[1]) == {"includeIndicatorStyles": False, "allowEval": False}


@pytest.mark.parametrize("page", PAGES)
def test_no_page_renders_an_inline_script_handler_or_style(page):
    response = get(page)
    if not response["Content-Type"].startswith("text/html"):
        pytest.skip("not an HTML page")

    html = response.content.decode()

    assert inline_scripts(html) == handler_attributes(html) == inline_styles(html) == []
    assert "javascript:" not in html.lower()


@pytest.mark.parametrize(
    "template", TEMPLATES, ids=lambda path: str(path.relative_to(TEMPLATES_DIR))
)
def test_no_template_has_an_inline_script(template):
    text = template.read_text()

    assert inline_scripts(text) == []
    assert "javascript:" not in text.lower()


@pytest.mark.parametrize(
    "template", TEMPLATES, ids=lambda path: str(path.relative_to(TEMPLATES_DIR))
)
def test_no_template_has_an_event_handler_attribute(template):
    assert handler_attributes(template.read_text()) == []


@pytest.mark.parametrize(
    "template", TEMPLATES, ids=lambda path: str(path.relative_to(TEMPLATES_DIR))
)
def test_no_template_has_an_inline_style(template):
    assert inline_styles(template.read_text()) == []
