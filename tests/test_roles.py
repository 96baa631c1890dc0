"""The role groups exist after migrate and grant what each role needs, and no more."""

import pytest

from tests.factories import make_user_with_role
from upserts import roles

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "granted", "refused"),
    [
        (
            roles.VIEWERS,
            [roles.VIEW_JOBS, roles.VIEW_AUDIT, roles.VIEW_CLUSTERS],
            [roles.OPERATE_JOBS, roles.MANAGE_CLUSTERS],
        ),
        (roles.OPERATORS, [roles.VIEW_JOBS, roles.OPERATE_JOBS], [roles.MANAGE_CLUSTERS]),
        (roles.CLUSTER_ADMINS, [roles.OPERATE_JOBS, roles.MANAGE_CLUSTERS], []),
    ],
)
def test_each_role_grants_its_permissions_and_no_more(role, granted, refused):
    user = make_user_with_role(f"user-{role}", role)

    assert all(user.has_perm(p) for p in granted)
    assert not any(user.has_perm(p) for p in refused)
