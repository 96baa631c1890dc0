"""Create, revoke and list API tokens from the shell.

manage.py api_token create alice --name nightly-sync   # prints the key, once
manage.py api_token list alice
manage.py api_token revoke uc_AbCdEfGh
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from upserts import selectors
from upserts.models import ApiToken
from upserts.services.api_tokens import create_api_token, revoke_api_token


class Command(BaseCommand):
    help = "Create, revoke or list API tokens (the key is shown once, at creation)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a token and print its key.")
        create.add_argument("username")
        create.add_argument("--name", required=True, help="What the token is for.")
        revoke = actions.add_parser("revoke", help="Revoke the token with this prefix.")
        revoke.add_argument("prefix")
        listing = actions.add_parser("list", help="List a user's tokens.")
        listing.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            self._create(options["username"], options["name"])
        elif options["action"] == "revoke":
            self._revoke(options["prefix"])
        else:
            self._list(options["username"])

    def _user(self, username: str) -> Any:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}.")
        return user

    def _create(self, username: str, name: str) -> None:
        user = self._user(username)
        if not user.is_staff:
            self.stderr.write(
                self.style.WARNING(f"{username} is not staff: the API will answer it 403.")
            )
        try:
            issued = create_api_token(user=user, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"Created token {issued.token.prefix} ({issued.token.name}) for {username}. "
            "Its key, shown this once:"
        )
        self.stdout.write(issued.key)

    def _revoke(self, prefix: str) -> None:
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
        if token is None:
            raise CommandError(f"No token has the prefix {prefix!r}; see `api_token list USER`.")
        if token.revoked_at is not None:
            self.stdout.write(f"Token {prefix} was already revoked at {token.revoked_at:%c}.")
            return
        revoke_api_token(token)
        self.stdout.write(self.style.SUCCESS(f"Revoked token {prefix} ({token.name})."))

    def _list(self, username: str) -> None:
        tokens = selectors.api_tokens_of(self._user(username))
        if not tokens:
            self.stdout.write(f"{username} has no API tokens.")
            return
        for token in tokens:
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            self.stdout.write(
                f"{token.prefix}  {token.name:<30}  created {token.created_at:%Y-%m-%d %H:%M}  "
                f"last used {used}  {state}"
            )
