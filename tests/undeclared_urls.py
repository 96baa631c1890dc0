"""A URLconf whose views forget to declare who may use them (tests/test_declared_access.py)."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from upserts import roles
from upserts.views.access import staff_required


def forgotten_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("open to anyone")


@staff_required(roles.VIEW_JOBS)
def declared_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("for viewers")


class HalfDeclaredView(APIView):
    required_permissions = {"GET": roles.VIEW_JOBS}

    def get(self, request: Request) -> Response:
        return Response({"read": True})

    def post(self, request: Request) -> Response:
        return Response({"written": True})


class OwnPermissionsView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"open": True})


urlpatterns = [
    path("forgotten/", forgotten_page, name="forgotten"),
    path("declared/", declared_page, name="declared"),
    path("api/half/", HalfDeclaredView.as_view(), name="half"),
    path("api/own/", OwnPermissionsView.as_view(), name="own"),
    path("", include("console.urls")),
]
handler403 = "upserts.views.errors.permission_denied"
