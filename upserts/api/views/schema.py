"""The OpenAPI schema and its Swagger UI, behind the same access checks."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from upserts import roles


class SchemaView(SpectacularAPIView):
    required_permissions = {"GET": roles.ANY_STAFF}


class SchemaDocsView(SpectacularSwaggerSplitView):
    required_permissions = {"GET": roles.ANY_STAFF}


# --- jobs ---------------------------------------------------------------------------------
