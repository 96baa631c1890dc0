"""The console's roles, as Django groups of model permissions.

Viewers read jobs, clusters and the audit trail; operators also upload files and cancel,
resume and retry jobs; cluster admins also register, change, test and delete clusters, and
allow the buckets jobs may read files from.
Everything also requires a staff account. Superusers have every permission.
"""

from typing import Any

VIEW_JOBS = "upserts.view_upsertjob"
OPERATE_JOBS = "upserts.operate_upsertjob"
VIEW_CLUSTERS = "upserts.view_clusterendpoint"
MANAGE_CLUSTERS = "upserts.change_clusterendpoint"
ADD_CLUSTERS = "upserts.add_clusterendpoint"
DELETE_CLUSTERS = "upserts.delete_clusterendpoint"
VIEW_AUDIT = "upserts.view_auditevent"

# Not model permissions: what a page or endpoint declares when no role is needed. Every view
# declares one of these or a permission above; the ``upserts.E001`` check refuses a view that
# declares nothing, and the API refuses a method its view does not list.
ANY_STAFF = "any staff account"
PUBLIC = "no account"

VIEWERS = "Viewers"
OPERATORS = "Operators"
CLUSTER_ADMINS = "Cluster admins"

_VIEWER_CODENAMES = [
    "view_upsertjob",
    "view_upsertbatch",
    "view_failedrow",
    "view_clusterendpoint",
    "view_auditevent",
]
_OPERATOR_CODENAMES = [*_VIEWER_CODENAMES, "operate_upsertjob"]
_CLUSTER_ADMIN_CODENAMES = [
    *_OPERATOR_CODENAMES,
    "add_clusterendpoint",
    "change_clusterendpoint",
    "delete_clusterendpoint",
    # The buckets jobs may read files from where they lie, with their credentials.
    "view_sourcebucket",
    "add_sourcebucket",
    "change_sourcebucket",
    "delete_sourcebucket",
    "view_sourceaddress",
    "add_sourceaddress",
    "change_sourceaddress",
    "delete_sourceaddress",
]

ROLE_CODENAMES: dict[str, list[str]] = {
    VIEWERS: _VIEWER_CODENAMES,
    OPERATORS: _OPERATOR_CODENAMES,
    CLUSTER_ADMINS: _CLUSTER_ADMIN_CODENAMES,
}


def ensure_role_groups(**kwargs: Any) -> None:
    """Create the role groups with their permissions (run after every migrate)."""
    from django.contrib.auth.models import Group, Permission

    for role, codenames in ROLE_CODENAMES.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = Permission.objects.filter(
            content_type__app_label="upserts", codename__in=codenames
        )
        group.permissions.set(permissions)
