"""Django admin for the console's models.

Cluster tokens are write-only here too: the form never renders the stored value, and leaving
the field blank keeps it. Audit events can be read, never added, changed or deleted.
"""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect

from upserts.client_address import client_ip
from upserts.errors import ConsoleError
from upserts.forms import clean_optional_request_size
from upserts.models import (
    ApiToken,
    AuditAction,
    AuditEvent,
    ClusterEndpoint,
    SourceAddress,
    SourceBucket,
    UpsertBatch,
    UpsertJob,
    WorkerHeartbeat,
)
from upserts.services import clusters
from upserts.services.api_tokens import revoke_api_token
from upserts.services.audit import record_event
from upserts.services.clusters import EDITABLE_CLUSTER_FIELDS


class ClusterEndpointAdminForm(forms.ModelForm):
    # Not a model field of the form: the stored token is never put in it, and a blank one
    # means "keep", which the service is told, not the instance.
    token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="API key or user:password. Leave blank to keep the current token.",
    )
    clear_token = forms.BooleanField(required=False, help_text="Remove the stored token.")

    class Meta:
        model = ClusterEndpoint
        fields = list(EDITABLE_CLUSTER_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_request_mb"].required = False
        if self.instance.pk and self.instance.has_token:
            self.fields[
                "token"
            ].help_text = (
                "A token is set — type a new one to replace it, or leave blank to keep it."
            )

    def clean_max_request_mb(self) -> int:
        return clean_optional_request_size(self)

    def new_token(self) -> str | None:
        """The token to store: "" to remove it, None to keep the stored one."""
        if self.cleaned_data.get("clear_token"):
            return ""
        return self.cleaned_data.get("token") or None


@admin.register(ClusterEndpoint)
class ClusterEndpointAdmin(admin.ModelAdmin):
    """Changes go through the cluster services, so the admin writes the same audit events as
    the console's pages and the API."""

    form = ClusterEndpointAdminForm
    list_display = [
        "name",
        "base_url",
        "api_version",
        "default_database",
        "is_enabled",
        "has_token",
    ]
    list_filter = ["api_version", "is_enabled"]
    search_fields = ["name", "base_url"]

    @admin.display(boolean=True, description="token set")
    def has_token(self, obj: ClusterEndpoint) -> bool:
        return obj.has_token

    def save_model(
        self, request: HttpRequest, obj: ClusterEndpoint, form: Any, change: bool
    ) -> None:
        fields: dict[str, Any] = {name: form.cleaned_data[name] for name in EDITABLE_CLUSTER_FIELDS}
        token = form.new_token()
        ip = client_ip(request)
        if change:
            stored = ClusterEndpoint.objects.get(pk=obj.pk)
            clusters.update_cluster(stored, token=token, actor=request.user, client_ip=ip, **fields)
        else:
            created = clusters.create_cluster(
                token=token or "", actor=request.user, client_ip=ip, **fields
            )
            obj.pk = created.pk
            obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: ClusterEndpoint) -> None:
        clusters.delete_cluster(obj, actor=request.user, client_ip=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ClusterEndpoint]) -> None:
        # All or none: one cluster with jobs keeps the others of the selection too.
        with transaction.atomic():
            for cluster in queryset:
                self.delete_model(request, cluster)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        return self._refusal_shown(
            request,
            lambda: super(ClusterEndpointAdmin, self).delete_view(
                request, object_id, extra_context
            ),
        )

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        return self._refusal_shown(
            request, lambda: super(ClusterEndpointAdmin, self).response_action(request, queryset)
        )

    def _refusal_shown(self, request: HttpRequest, answer: Callable[[], Any]) -> Any:
        """A deletion the services refuse (a cluster that has jobs) becomes a message on the
        page it was asked from, as on the console's own pages."""
        try:
            return answer()
        except ConsoleError as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


_BATCH_COLUMNS = (
    "sequence",
    "first_row",
    "last_row",
    "row_count",
    "status",
    "attempts",
    "upsert_count",
    "milvus_code",
    "milvus_message",
    "duration_ms",
)


class UpsertBatchInline(admin.TabularInline):
    model = UpsertBatch
    extra = 0
    can_delete = False
    show_change_link = True
    fields = _BATCH_COLUMNS
    readonly_fields = _BATCH_COLUMNS

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SourceBucketAdminForm(forms.ModelForm):
    """The credentials are write-only: never put in the form; left blank, they are kept."""

    access_key_id = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the stored one (or to read with the hosts' own).",
    )
    secret_access_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored one.",
    )
    clear_credentials = forms.BooleanField(
        required=False, help_text="Remove the stored keys: read with the hosts' own."
    )

    class Meta:
        model = SourceBucket
        fields = [
            "name",
            "bucket",
            "prefix",
            "endpoint_url",
            "region",
            "path_style",
            "access_key_id",
            "secret_access_key",
            "is_enabled",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stored values never reach the page.
        self.initial.pop("access_key_id", None)
        self.initial.pop("secret_access_key", None)


@admin.register(SourceBucket)
class SourceBucketAdmin(admin.ModelAdmin):
    form = SourceBucketAdminForm
    list_display = ["name", "bucket", "prefix", "endpoint_url", "is_enabled", "has_keys"]
    list_filter = ["is_enabled"]
    search_fields = ["name", "bucket", "prefix"]

    @admin.display(boolean=True, description="keys set")
    def has_keys(self, obj: SourceBucket) -> bool:
        return bool(obj.access_key_id)

    def save_model(self, request: HttpRequest, obj: SourceBucket, form: Any, change: bool) -> None:
        if change:
            stored = SourceBucket.objects.get(pk=obj.pk)
            if form.cleaned_data.get("clear_credentials"):
                obj.access_key_id = obj.secret_access_key = ""
            else:
                obj.access_key_id = form.cleaned_data["access_key_id"] or stored.access_key_id
                obj.secret_access_key = (
                    form.cleaned_data["secret_access_key"] or stored.secret_access_key
                )
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            record_event(
                action=AuditAction.SOURCE_BUCKET_SAVED,
                actor=request.user,
                target=obj,
                client_ip=client_ip(request),
                details={
                    "bucket": obj.bucket,
                    "prefix": obj.prefix,
                    "endpoint_url": obj.endpoint_url,
                    "is_enabled": obj.is_enabled,
                    "created": not change,
                    "keys_set": bool(obj.access_key_id),
                },
            )

    def delete_model(self, request: HttpRequest, obj: SourceBucket) -> None:
        with transaction.atomic():
            record_event(
                action=AuditAction.SOURCE_BUCKET_DELETED,
                actor=request.user,
                target=obj,
                client_ip=client_ip(request),
                details={"bucket": obj.bucket, "prefix": obj.prefix},
            )
            super().delete_model(request, obj)


class SourceAddressAdminForm(forms.ModelForm):
    """The Authorization header is write-only, as cluster tokens are."""

    authorization = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Sent as the Authorization header (e.g. Bearer …). Blank keeps the stored one.",
    )
    clear_authorization = forms.BooleanField(required=False, help_text="Remove the stored one.")

    class Meta:
        model = SourceAddress
        fields = ["name", "url_prefix", "authorization", "verify_tls", "is_enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.pop("authorization", None)

    def clean_url_prefix(self) -> str:
        prefix = str(self.cleaned_data["url_prefix"]).strip()
        if not prefix.startswith("https://"):
            raise forms.ValidationError("Files are read from https:// addresses only.")
        return prefix


@admin.register(SourceAddress)
class SourceAddressAdmin(admin.ModelAdmin):
    form = SourceAddressAdminForm
    list_display = ["name", "url_prefix", "verify_tls", "is_enabled"]
    list_filter = ["is_enabled"]
    search_fields = ["name", "url_prefix"]

    def save_model(self, request: HttpRequest, obj: SourceAddress, form: Any, change: bool) -> None:
        if change:
            stored = SourceAddress.objects.get(pk=obj.pk)
            if form.cleaned_data.get("clear_authorization"):
                obj.authorization = ""
            else:
                obj.authorization = form.cleaned_data["authorization"] or stored.authorization
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            record_event(
                action=AuditAction.SOURCE_ADDRESS_SAVED,
                actor=request.user,
                target=obj,
                client_ip=client_ip(request),
                details={
                    "url_prefix": obj.url_prefix,
                    "verify_tls": obj.verify_tls,
                    "is_enabled": obj.is_enabled,
                    "created": not change,
                    "authorization_set": bool(obj.authorization),
                },
            )

    def delete_model(self, request: HttpRequest, obj: SourceAddress) -> None:
        with transaction.atomic():
            record_event(
                action=AuditAction.SOURCE_ADDRESS_DELETED,
                actor=request.user,
                target=obj,
                client_ip=client_ip(request),
                details={"url_prefix": obj.url_prefix},
            )
            super().delete_model(request, obj)


@admin.register(UpsertJob)
class UpsertJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "original_filename",
        "cluster",
        "collection_name",
        "status",
        "rows_read",
        "rows_upserted",
        "rows_failed",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "cluster", "file_format"]
    search_fields = ["original_filename", "collection_name", "sha256"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "status",
        "rows_read",
        "rows_upserted",
        "rows_failed",
        "batches_done",
        "checkpoint_row",
        "sha256",
        "size_bytes",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "error_message",
    ]
    inlines = [UpsertBatchInline]
    list_select_related = ["cluster", "created_by"]


@admin.register(UpsertBatch)
class UpsertBatchAdmin(admin.ModelAdmin):
    list_display = [
        "job",
        "sequence",
        "status",
        "row_count",
        "upsert_count",
        "attempts",
        "milvus_code",
        "duration_ms",
    ]
    list_filter = ["status"]
    list_select_related = ["job"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_username", "action", "target_repr", "client_ip"]
    list_filter = ["action"]
    search_fields = ["actor_username", "target_repr", "target_id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "seen_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here, never made (the key would have nowhere safe to go:
    use the API or ``manage.py api_token create``); the key's hash is never shown."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.filter(revoked_at__isnull=True).select_related("user"))
        for token in tokens:
            revoke_api_token(token, actor=request.user, client_ip=client_ip(request))
        self.message_user(request, f"Revoked {len(tokens)} token(s).")
