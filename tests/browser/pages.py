"""What the browser tests share: logging in through the form, and screenshots to look at."""

from pathlib import Path
from typing import Any

from tests.factories import PASSWORD

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def log_in(page: Any, live_server: Any, username: str) -> None:
    """Log in through the login page, as a person does."""
    page.goto(f"{live_server.url}/jobs/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")


class Screenshots:
    """Full-page screenshots, numbered in the order taken, for a person to look at."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.taken = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        self.taken += 1
        path = ARTIFACTS / f"{self.prefix}-{self.taken:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path
