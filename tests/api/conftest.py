"""Clients of the API as each kind of caller, authenticated by real API tokens."""

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from tests.factories import make_user, make_user_with_role
from tests.helpers import ROLE_GROUPS, token_client


@pytest.fixture(autouse=True)
def _users_made_by_the_dozen(fast_password_hashing) -> None:
    """Every API test makes users and tokens."""


@pytest.fixture
def api_as(db) -> Callable[[str], APIClient]:
    """``api_as("operator")``: a client for a staff user of that role.

    Also ``"anonymous"`` (no credentials), ``"non_staff"`` (a token of a user who is not
    staff), ``"staff"`` (staff, no role) and ``"superuser"``.
    """

    def make(who: str) -> APIClient:
        if who == "anonymous":
            return APIClient()
        if who == "non_staff":
            return token_client(make_user("guest", staff=False))
        if who == "staff":
            return token_client(make_user("staff-no-role"))
        if who == "superuser":
            return token_client(make_user("root", superuser=True))
        return token_client(make_user_with_role(who, ROLE_GROUPS[who]))

    return make
