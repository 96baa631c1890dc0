"""API tokens: list and make your own; revoke."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from upserts import roles, selectors
from upserts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenSerializer,
)
from upserts.client_address import client_ip
from upserts.models import ApiToken
from upserts.services import api_tokens


@extend_schema_view(
    get=extend_schema(
        tags=["tokens"],
        summary="List your API tokens",
        description="Your tokens, revoked ones included; never their keys.",
    )
)
class ApiTokenListView(generics.ListAPIView):
    """Any staff account manages its own tokens; no role is needed."""

    required_permissions = {"GET": roles.ANY_STAFF, "POST": roles.ANY_STAFF}

    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.api_tokens_of(self.request.user)

    @extend_schema(
        tags=["tokens"],
        summary="Create an API token",
        description=(
            "Answers with the token's secret `key`, shown this once: store it now. Send it as "
            "`Authorization: Bearer <key>`. Audited."
        ),
        request=ApiTokenSerializer,
        responses={
            201: OpenApiResponse(ApiTokenCreatedSerializer, description="The token and its key.")
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = api_tokens.create_api_token(
            user=request.user,  # type: ignore[arg-type]
            name=serializer.validated_data["name"],
            actor=request.user,
            client_ip=client_ip(request),
        )
        data = ApiTokenCreatedSerializer(issued.token, context={"key": issued.key}).data
        location = reverse("api:token-detail", kwargs={"pk": issued.token.pk}, request=request)
        return Response(
            data,
            status=status.HTTP_201_CREATED,
            # The key is in this body only: no cache anywhere may keep it.
            headers={"Location": location, "Cache-Control": "no-store"},
        )


class ApiTokenDetailView(APIView):
    required_permissions = {"GET": roles.ANY_STAFF, "DELETE": roles.ANY_STAFF}

    def _token(self, request: Request, pk: int) -> ApiToken:
        token = selectors.api_tokens_of(request.user).filter(pk=pk).first()
        if token is None:
            raise NotFound(f"You have no API token {pk}.")
        return token

    @extend_schema(
        tags=["tokens"],
        summary="Get one of your API tokens",
        description="The token's name, prefix and use; never its key.",
        responses=OpenApiResponse(ApiTokenSerializer, description="The token."),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApiTokenSerializer(self._token(request, pk)).data)

    @extend_schema(
        tags=["tokens"],
        summary="Revoke one of your API tokens",
        description="The token is refused from now on (401). Revoking twice is harmless. Audited.",
        responses={204: OpenApiResponse(description="Revoked.")},
    )
    def delete(self, request: Request, pk: int) -> Response:
        api_tokens.revoke_api_token(
            self._token(request, pk), actor=request.user, client_ip=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
