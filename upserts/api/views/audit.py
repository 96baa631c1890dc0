"""The audit trail and which jobs wrote an entity id."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics

from upserts import roles
from upserts.api import filters
from upserts.api.serializers import (
    AuditEventSerializer,
    AuditFilterSerializer,
    EntityLookupSerializer,
    EntityWriteSerializer,
)
from upserts.api.views.common import validated_query


@extend_schema_view(
    get=extend_schema(
        tags=["audit"],
        summary="List audit events",
        description="Who did what to which object, when and from where; newest first.",
        parameters=[AuditFilterSerializer],
    )
)
class AuditEventListView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_AUDIT}
    serializer_class = AuditEventSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return filters.audit_events_matching(validated_query(AuditFilterSerializer, self.request))


@extend_schema_view(
    get=extend_schema(
        tags=["entities"],
        summary="Find the jobs that wrote an entity",
        description=(
            "Every batch that upserted the entity id into the collection, the last write "
            'first: the first item answers "which job last wrote this id?".'
        ),
        parameters=[EntityLookupSerializer],
    )
)
class EntityLookupView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_AUDIT}
    serializer_class = EntityWriteSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return filters.entity_writes_matching(validated_query(EntityLookupSerializer, self.request))


# --- API tokens ---------------------------------------------------------------------------
