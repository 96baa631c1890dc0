"""A PostgreSQL database of a benchmark's own, created and always dropped by it."""

import secrets
from urllib.parse import urlsplit, urlunsplit


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class ScratchPostgres:
    """Never the database in the given URL: a fresh one beside it, so a benchmark cannot touch
    data it did not make."""

    def __init__(self, server_url: str, *, prefix: str) -> None:
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        # The maintenance database, not the one in the URL, issues CREATE and DROP.
        self.admin_url = with_database(server_url, "postgres")
        self.url = with_database(server_url, self.name)
        self.created = False

    def create(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if not self.created:
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False
