from django.urls import path

from upserts.views import dashboard, health

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
]
