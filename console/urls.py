"""URL configuration of the console."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from upserts.views.access import public
from upserts.views.login import ThrottledLoginView

urlpatterns = [
    path("login/", public(ThrottledLoginView.as_view()), name="login"),
    path("logout/", public(auth_views.LogoutView.as_view()), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("upserts.api.urls")),
    path("", include("upserts.urls")),
]

handler403 = "upserts.views.errors.permission_denied"
handler404 = "upserts.views.errors.page_not_found"
handler500 = "upserts.views.errors.server_error"
