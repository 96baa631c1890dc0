"""The console's forms: they parse and check what a person typed; services do the rest."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from upserts.client_address import client_ip
from upserts.column_mapping import ColumnMapping, InvalidMapping
from upserts.job_limits import BATCH_SIZE, MAX_IN_FLIGHT, JobLimits
from upserts.models import AuditAction, ClusterEndpoint, JobStatus
from upserts.preview import ColumnChoice, Preview
from upserts.selectors import enabled_clusters
from upserts.services.clusters import EDITABLE_CLUSTER_FIELDS
from upserts.services.logins import seconds_until_login_allowed
from upserts.services.submissions import UploadTarget

_DATE = forms.DateInput(attrs={"type": "date"})


def clean_optional_request_size(form: forms.ModelForm) -> int:
    """The largest request a cluster form leaves empty (or a client leaves out) is the
    cluster's own, or Milvus' 64 MB for a new one."""
    value = form.cleaned_data.get("max_request_mb")
    if value is not None:
        return int(value)
    current = form.instance.max_request_mb if form.instance.pk else None
    return int(current or ClusterEndpoint._meta.get_field("max_request_mb").get_default())


class ClusterForm(forms.ModelForm):
    """Register or change a cluster. The token is write-only: typed, never shown again."""

    token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="An API key, or user:password. Stored encrypted; never shown again.",
    )
    remove_token = forms.BooleanField(required=False, label="Remove the stored token")

    class Meta:
        model = ClusterEndpoint
        fields = list(EDITABLE_CLUSTER_FIELDS)
        widgets = {"base_url": forms.TextInput(attrs={"placeholder": "http://127.0.0.1:19530"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_request_mb"].required = False
        if self.instance.pk is None:
            del self.fields["remove_token"]
            del self.fields["is_enabled"]
        elif self.instance.has_token:
            self.fields["token"].help_text = "A token is set — replace it? Leave blank to keep it."
            self.fields["token"].widget.attrs["placeholder"] = "set — type to replace"
        else:
            del self.fields["remove_token"]
            self.fields["token"].help_text = "No token is set. " + str(
                self.fields["token"].help_text
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("remove_token") and cleaned.get("token"):
            self.add_error("token", "Type a new token or remove the stored one, not both.")
        return cleaned

    def clean_max_request_mb(self) -> int:
        return clean_optional_request_size(self)

    def changed_token(self) -> str | None:
        """The token for ``update_cluster``: ``None`` keeps it, ``""`` removes it."""
        if self.cleaned_data.get("remove_token"):
            return ""
        return self.cleaned_data.get("token") or None

    def cluster_fields(self) -> dict[str, Any]:
        """The typed fields, as keyword arguments of ``create_cluster`` / ``update_cluster``."""
        return {
            name: self.cleaned_data[name] for name in EDITABLE_CLUSTER_FIELDS if name in self.fields
        }


class UploadTargetForm(forms.Form):
    """Where a file goes and how it is sent: the upload form but for the file itself, which a
    resumable upload has already stored."""

    cluster = forms.ModelChoiceField(queryset=ClusterEndpoint.objects.none(), empty_label=None)
    database_name = forms.CharField(
        label="Database",
        max_length=255,
        required=False,
        help_text="Leave blank for the cluster's default database.",
    )
    collection_name = forms.CharField(label="Collection", max_length=255)
    partition_name = forms.CharField(
        label="Partition", max_length=255, required=False, help_text="Optional; v2 API only."
    )
    batch_size = forms.IntegerField(
        initial=BATCH_SIZE.default,
        help_text=BATCH_SIZE.help_text,
        min_value=BATCH_SIZE.minimum,
        max_value=BATCH_SIZE.maximum,
    )
    max_in_flight = forms.IntegerField(
        label="Requests in flight",
        initial=MAX_IN_FLIGHT.default,
        help_text=MAX_IN_FLIGHT.help_text,
        min_value=MAX_IN_FLIGHT.minimum,
        max_value=MAX_IN_FLIGHT.maximum,
    )
    partial_update = forms.BooleanField(
        label="Update only the fields in the file",
        required=False,
        help_text="Each row needs its primary key and changes only the fields it gives; the "
        "entity keeps the others. REST v2 or gRPC, Milvus 2.6.2 and later.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = enabled_clusters()  # type: ignore[attr-defined]

    def upload_target(self) -> UploadTarget:
        data = self.cleaned_data
        return UploadTarget(
            data["cluster"],
            data["collection_name"],
            data["database_name"],
            data["partition_name"],
            data.get("partial_update", False),
        )

    def job_limits(self) -> JobLimits:
        return JobLimits(self.cleaned_data["batch_size"], self.cleaned_data["max_in_flight"])


class UploadForm(UploadTargetForm):
    """The upload form: the target, and the file sent with it."""

    file = forms.FileField(
        required=False,
        allow_empty_file=True,
        help_text="JSON, JSON Lines, CSV or Parquet, optionally gzip-compressed.",
    )
    source = forms.CharField(
        label="Or a file where it lies",
        required=False,
        max_length=2048,
        widget=forms.TextInput(attrs={"placeholder": "s3://bucket/path/to/file.parquet"}),
        help_text="s3://bucket/key in a bucket, or an https:// address under a prefix, that a "
        "cluster admin has allowed: read where it lies.",
    )
    field_order = [
        "cluster",
        "database_name",
        "collection_name",
        "partition_name",
        "file",
        "source",
        "batch_size",
        "max_in_flight",
    ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        has_file = bool(cleaned.get("file")) or "file" in self.errors
        if has_file == bool(cleaned.get("source")):
            self.add_error("file", "Choose a file, or name one in a bucket, not both.")
        return cleaned

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accept = ".json,.jsonl,.ndjson,.csv,.parquet,.gz"
        self.fields["file"].widget.attrs.update(
            {"accept": accept, "data-max-bytes": str(settings.UPLOAD_MAX_BYTES)}
        )


class ColumnMappingForm(forms.Form):
    """Which field each column of the file fills, one choice per column the preview found.

    The choices are the collection's fields, "leave out" and, for a column whose name is no
    field's, "no field": the dynamic field where the collection has one.
    """

    NO_FIELD = ColumnChoice.NO_FIELD
    LEAVE_OUT = ColumnChoice.IGNORE

    def __init__(self, *args: Any, preview: Preview, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = preview.schema
        field_names = [f.name for f in schema.fields if not f.auto_id] if schema else []
        dynamic = bool(schema and schema.enable_dynamic_field)
        no_field = (self.NO_FIELD, "— the dynamic field —" if dynamic else "— no field —")
        self.columns = [choice.column for choice in preview.column_choices]
        for index, choice in enumerate(preview.column_choices):
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=choice.column,
                choices=[
                    *([no_field] if choice.column not in field_names else []),
                    *[(name, name) for name in field_names],
                    (self.LEAVE_OUT, "— leave out —"),
                ],
                initial=choice.target,
                required=False,
            )

    def mapping(self) -> ColumnMapping:
        """The person's choices as a mapping; call once the form is valid."""
        chosen: dict[str, str | None] = {}
        for index, column in enumerate(self.columns):
            target = self.cleaned_data.get(f"column_{index}") or self.NO_FIELD
            if target == self.LEAVE_OUT:
                chosen[column] = None
            elif target != self.NO_FIELD:
                chosen[column] = target
        return ColumnMapping.from_json(chosen)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            self.mapping()
        except InvalidMapping as exc:
            raise ValidationError(str(exc)) from None
        return cleaned


class ListFilterForm(forms.Form):
    """What every list's filters share: a search box, who, and which days, both ends included.

    Subclasses add their own fields and name them for their selector in ``filter_arguments``.
    """

    label_suffix = ""
    search_placeholder = ""
    q = forms.CharField(label="Search", required=False)
    user = forms.CharField(required=False, widget=forms.TextInput(attrs={"list": "usernames"}))
    created_from = forms.DateField(label="From", required=False, widget=_DATE)
    created_to = forms.DateField(label="To", required=False, widget=_DATE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs["placeholder"] = self.search_placeholder

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The last day comes before the first.")
        return cleaned

    def selector_arguments(self) -> dict[str, Any]:
        """The selector's keyword arguments; an invalid form filters nothing."""
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "username": data.get("user", ""),
            "created_from": data.get("created_from"),
            "created_to": data.get("created_to"),
            "search": data.get("q", ""),
            **self.filter_arguments(data),
        }

    def filter_arguments(self, data: dict[str, Any]) -> dict[str, Any]:
        return {}


class JobFilterForm(ListFilterForm):
    search_placeholder = "file, collection, sha256 or #job"
    status = forms.ChoiceField(choices=[("", "any status"), *JobStatus.choices], required=False)
    cluster = forms.ModelChoiceField(
        queryset=ClusterEndpoint.objects.order_by("name"), required=False, empty_label="any cluster"
    )
    collection = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"list": "collections"})
    )

    def filter_arguments(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": data.get("status", ""),
            "cluster": data.get("cluster"),
            "collection_name": data.get("collection", ""),
        }


class AuditFilterForm(ListFilterForm):
    search_placeholder = "target or IP address"
    action = forms.ChoiceField(choices=[("", "any action"), *AuditAction.choices], required=False)
    target_type = forms.ChoiceField(
        label="Target",
        required=False,
        choices=[("", "anything"), ("upsertjob", "jobs"), ("clusterendpoint", "clusters")],
    )
    target_id = forms.CharField(label="Target id", required=False)

    def filter_arguments(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "action": data.get("action", ""),
            "target_type": data.get("target_type", ""),
            "target_id": data.get("target_id", ""),
        }


class EntityLookupForm(forms.Form):
    label_suffix = ""
    entity_id = forms.CharField(label="Entity id", max_length=512)
    collection = forms.CharField(
        max_length=255, widget=forms.TextInput(attrs={"list": "collections"})
    )
    cluster = forms.ModelChoiceField(
        queryset=ClusterEndpoint.objects.order_by("name"), required=False, empty_label="any cluster"
    )


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, refusing to check a password once the username or IP failed too often.

    The throttle is checked before ``authenticate``, so while it holds even the right password
    is refused, and guessing gains nothing. The console's login page and the admin's share it.
    """

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        wait = seconds_until_login_allowed(username, client_ip(self.request))
        if wait:
            minutes = max(1, round(wait / 60))
            raise ValidationError(
                f"Too many failed logins. Try again in about {minutes} minute"
                f"{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        return super().clean()

    def confirm_login_allowed(self, user: User) -> None:
        """A right password refused here (a non-staff user at the admin) is a failed login too.

        ``authenticate`` succeeded, so Django sent no ``user_login_failed``: sending it here
        puts the refusal in the audit trail and the throttle like any wrong password.
        """
        try:
            super().confirm_login_allowed(user)
        except ValidationError:
            user_login_failed.send(
                sender=type(self),
                credentials={"username": user.get_username()},
                request=self.request,
            )
            raise


class ThrottledAdminAuthenticationForm(ThrottledAuthenticationForm, AdminAuthenticationForm):
    """The admin's login form (staff only) behind the same throttle and audit."""


def refused_by_login_throttle(form: object) -> bool:
    """Whether a login form was turned away by the throttle: its page answers 429 then."""
    return isinstance(form, ThrottledAuthenticationForm) and form.has_error(
        NON_FIELD_ERRORS, code="throttled"
    )
