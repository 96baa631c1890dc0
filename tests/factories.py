"""Small builders of real objects for tests."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.files.base import ContentFile

from upserts.models import ClusterEndpoint, UpsertJob

PASSWORD = "correct-horse-battery-staple"


def make_user(
    username: str = "staff", *, staff: bool = True, superuser: bool = False
) -> AbstractUser:
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_staff=staff, is_superuser=superuser
    )
    return user  # type: ignore[no-any-return]


def make_cluster(name: str = "local", **fields: Any) -> ClusterEndpoint:
    fields.setdefault("base_url", "http://127.0.0.1:19530")
    return ClusterEndpoint.objects.create(name=name, **fields)


def make_job(
    cluster: ClusterEndpoint | None = None, *, content: bytes = b"{}\n", **fields: Any
) -> UpsertJob:
    job = UpsertJob(
        cluster=cluster or make_cluster(),
        collection_name=fields.pop("collection_name", "books"),
        original_filename=fields.pop("original_filename", "rows.jsonl"),
        size_bytes=len(content),
        **fields,
    )
    job.source_file.save(job.original_filename, ContentFile(content), save=False)
    job.save()
    return job


def make_user_with_role(username: str, role: str) -> AbstractUser:
    """A staff user in one of the console's role groups (upserts.roles)."""
    from django.contrib.auth.models import Group

    user = make_user(username)
    user.groups.add(Group.objects.get(name=role))
    return user


BOOK_FIELDS = [
    {"name": "book_id", "type": "INT64", "is_primary": True},
    {"name": "title", "type": "VARCHAR", "max_length": 64},
    {"name": "emb", "type": "FLOAT_VECTOR", "dim": 4},
]


def book(book_id: int, title: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "book_id": book_id,
        "title": title if title is not None else f"Book {book_id}",
        "emb": [book_id / 10, 0.5, -0.25, 1.0],
        **extra,
    }
