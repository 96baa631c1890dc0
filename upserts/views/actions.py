"""Running a service action from a page: as the person asking, from where they asked, and
with a refusal shown to them as a message on the page they are sent to next."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.http import HttpRequest

from upserts.client_address import client_ip
from upserts.errors import ConsoleError

Result = TypeVar("Result")


def act(request: HttpRequest, action: Callable[..., Result], *args: Any) -> Result | None:
    """``action(*args)`` done by the request's user; ``None`` when a service refused it (its
    message is already queued), so the view only chooses where to go next."""
    try:
        return action(*args, actor=request.user, client_ip=client_ip(request))
    except ConsoleError as exc:
        messages.error(request, str(exc))
        return None
