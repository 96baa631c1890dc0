"""The audit trail: every event, filtered, exported as CSV; and which job wrote an entity."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from upserts import exports, roles, selectors
from upserts.forms import AuditFilterForm, EntityLookupForm
from upserts.views.access import staff_required

EVENTS_PER_PAGE = 50
ENTITY_WRITES_SHOWN = 100


@require_GET
@staff_required(roles.VIEW_AUDIT)
def audit_list(request: HttpRequest) -> HttpResponse:
    filters = AuditFilterForm(request.GET or None)
    events = selectors.audit_events(**filters.selector_arguments())
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/list.html",
        {"filters": filters, "page": page, "usernames": selectors.staff_usernames()},
    )


@require_GET
@staff_required(roles.VIEW_AUDIT)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered events as CSV, streamed: the trail only ever grows."""
    filters = AuditFilterForm(request.GET or None)
    events = selectors.audit_events(**filters.selector_arguments())
    response = StreamingHttpResponse(
        exports.audit_events_csv(events), content_type="text/csv; charset=utf-8"
    )
    filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@staff_required(roles.VIEW_AUDIT)
def entity_lookup(request: HttpRequest) -> HttpResponse:
    """Which jobs wrote an entity id into a collection, when, and who sent them."""
    form = EntityLookupForm(request.GET if "entity_id" in request.GET else None)
    writes = None
    if form.is_bound and form.is_valid():
        writes = selectors.entity_writes(
            entity_id=form.cleaned_data["entity_id"],
            collection_name=form.cleaned_data["collection"],
            cluster=form.cleaned_data["cluster"],
        )[:ENTITY_WRITES_SHOWN]
    return render(
        request,
        "audit/entities.html",
        {"form": form, "writes": writes, "collections": selectors.known_collections()},
    )
