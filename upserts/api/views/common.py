"""What the API views share: query parameters checked by a serializer, a cluster by id."""

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from upserts import selectors
from upserts.models import ClusterEndpoint


def validated_query(serializer_class: type[BaseSerializer], request: Request) -> dict[str, Any]:
    """The request's query parameters, checked by ``serializer_class`` (400 naming the field)."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def cluster_or_404(pk: int) -> ClusterEndpoint:
    cluster = selectors.cluster_list().filter(pk=pk).first()
    if cluster is None:
        raise NotFound(f"There is no cluster {pk}.")
    return cluster
