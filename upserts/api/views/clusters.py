"""Clusters: register, change, test, and read their collections and schemas."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from upserts import roles, selectors
from upserts.api.errors import ClusterFailed
from upserts.api.serializers import (
    ClusterSerializer,
    ClusterWriteSerializer,
    CollectionListSerializer,
    CollectionSchemaSerializer,
    ConnectionTestRequestSerializer,
    ConnectionTestSerializer,
    DatabaseQuerySerializer,
    ErrorSerializer,
)
from upserts.api.views.common import cluster_or_404, validated_query
from upserts.client_address import client_ip
from upserts.models import ClusterEndpoint
from upserts.services import clusters

_CLUSTER_FAILED = OpenApiResponse(
    ErrorSerializer,
    description="The cluster answered with an error or not at all (`cluster_error`); "
    "`message` carries the cluster's own words.",
)


@extend_schema_view(
    get=extend_schema(
        tags=["clusters"],
        summary="List clusters",
        description="Registered clusters, by name. The token is never shown, only `has_token`.",
    )
)
class ClusterListView(generics.ListAPIView):
    required_permissions = {"GET": roles.VIEW_CLUSTERS, "POST": roles.ADD_CLUSTERS}
    serializer_class = ClusterSerializer

    def get_queryset(self) -> QuerySet[ClusterEndpoint]:
        return selectors.cluster_list()

    @extend_schema(
        tags=["clusters"],
        summary="Register a cluster",
        description="Needs the Cluster admins role; audited. The token is write-only.",
        request=ClusterWriteSerializer,
        responses={201: OpenApiResponse(ClusterSerializer, description="The new cluster.")},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ClusterWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cluster = clusters.create_cluster(
            **serializer.validated_data, actor=request.user, client_ip=client_ip(request)
        )
        data = ClusterSerializer(cluster, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


class ClusterDetailView(APIView):
    required_permissions = {
        "GET": roles.VIEW_CLUSTERS,
        "PUT": roles.MANAGE_CLUSTERS,
        "PATCH": roles.MANAGE_CLUSTERS,
        "DELETE": roles.DELETE_CLUSTERS,
    }

    @extend_schema(
        tags=["clusters"],
        summary="Get a cluster",
        description="The cluster's settings and last connection test; never its token.",
        responses=OpenApiResponse(ClusterSerializer, description="The cluster."),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ClusterSerializer(cluster_or_404(pk), context={"request": request}).data)

    @extend_schema(
        tags=["clusters"],
        summary="Replace a cluster's settings",
        description="Needs the Cluster admins role; audited. Leave `token` out to keep it.",
        request=ClusterWriteSerializer,
        responses=OpenApiResponse(ClusterSerializer, description="The changed cluster."),
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=["clusters"],
        summary="Change some of a cluster's settings",
        description=(
            "Needs the Cluster admins role; audited. Leave `token` out to keep it, send an "
            "empty `token` to remove it."
        ),
        request=ClusterWriteSerializer,
        responses=OpenApiResponse(ClusterSerializer, description="The changed cluster."),
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        cluster = cluster_or_404(pk)
        serializer = ClusterWriteSerializer(cluster, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        token = changes.pop("token", None)
        cluster = clusters.update_cluster(
            cluster, token=token, actor=request.user, client_ip=client_ip(request), **changes
        )
        return Response(ClusterSerializer(cluster, context={"request": request}).data)

    @extend_schema(
        tags=["clusters"],
        summary="Remove a cluster",
        description=(
            "Needs the Cluster admins role; audited. A cluster with jobs cannot be removed "
            "(409): disable it instead."
        ),
        responses={
            204: OpenApiResponse(description="Removed."),
            409: OpenApiResponse(ErrorSerializer, description="The cluster has jobs."),
        },
    )
    def delete(self, request: Request, pk: int) -> Response:
        clusters.delete_cluster(
            cluster_or_404(pk), actor=request.user, client_ip=client_ip(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClusterTestView(APIView):
    required_permissions = {"POST": roles.MANAGE_CLUSTERS}

    @extend_schema(
        tags=["clusters"],
        summary="Test the connection to a cluster",
        description=(
            "Lists the database's collections, timing the round trip; the outcome is kept on "
            "the cluster (`last_test_*`) and audited. A failed test answers 502 with the "
            "cluster's message. Needs the Cluster admins role."
        ),
        request=ConnectionTestRequestSerializer,
        responses={
            200: OpenApiResponse(ConnectionTestSerializer, description="The cluster answered."),
            502: _CLUSTER_FAILED,
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        cluster = cluster_or_404(pk)
        serializer = ConnectionTestRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = clusters.check_connection(
            cluster,
            database=serializer.validated_data["database"],
            actor=request.user,
            client_ip=client_ip(request),
        )
        if not result.ok:
            raise ClusterFailed(
                f"The connection test failed: {result.error}",
                latency_ms=result.latency_ms,
                database=result.database,
            )
        context = {"request": request, "cluster": cluster}
        return Response(ConnectionTestSerializer(result, context=context).data)


class ClusterCollectionsView(APIView):
    required_permissions = {"GET": roles.VIEW_CLUSTERS}

    @extend_schema(
        tags=["clusters"],
        summary="List a cluster's collections",
        operation_id="clusters_collections_list",
        description="Asks the cluster for the database's collections.",
        parameters=[DatabaseQuerySerializer],
        responses={
            200: OpenApiResponse(CollectionListSerializer, description="The collections."),
            502: _CLUSTER_FAILED,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        cluster = cluster_or_404(pk)
        database = validated_query(DatabaseQuerySerializer, request)["database"]
        database = database or cluster.default_database
        names = clusters.list_collections(cluster, database)
        return Response(CollectionListSerializer({"database": database, "collections": names}).data)


class ClusterCollectionView(APIView):
    required_permissions = {"GET": roles.VIEW_CLUSTERS}

    @extend_schema(
        tags=["clusters"],
        summary="Get a collection's schema",
        operation_id="clusters_collection_schema",
        description=(
            "Asks the cluster to describe the collection: its fields, primary key, vector "
            "dimensions and whether it takes dynamic fields. 404 when the cluster has no such "
            "collection or database."
        ),
        parameters=[DatabaseQuerySerializer],
        responses={
            200: OpenApiResponse(CollectionSchemaSerializer, description="The schema."),
            502: _CLUSTER_FAILED,
        },
    )
    def get(self, request: Request, pk: int, name: str) -> Response:
        cluster = cluster_or_404(pk)
        database = validated_query(DatabaseQuerySerializer, request)["database"]
        database = database or cluster.default_database
        schema = clusters.describe_collection(cluster, name, database)
        return Response(CollectionSchemaSerializer(schema, context={"database": database}).data)


# --- audit and entities -------------------------------------------------------------------
