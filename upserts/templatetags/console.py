"""Small presentation helpers of the console's templates."""

from typing import Any

import orjson
from django import template

register = template.Library()

_CELL_CHARACTERS = 60
_CHART_WIDTH = 640
_CHART_HEIGHT = 180
_CHART_PAD_LEFT = 56
_CHART_PAD = 14


@register.simple_tag(takes_context=True)
def nav_class(context: template.Context, *prefixes: str) -> str:
    """``active`` on the navigation link of the area the page belongs to."""
    match = getattr(context.get("request"), "resolver_match", None)
    name = (match.url_name or "") if match else ""
    return "active" if any(name.startswith(prefix) for prefix in prefixes) else ""


@register.filter
def described_rate_cap(cluster: Any) -> str:
    """``0.5 MB/s and 20 requests/s``: what a cluster takes from all jobs together; "" when
    it has no cap."""
    parts = []
    if cluster.max_mb_per_second:
        parts.append(f"{cluster.max_mb_per_second:g} MB/s")
    if cluster.max_requests_per_second:
        parts.append(f"{cluster.max_requests_per_second:g} requests/s")
    return " and ".join(parts)


@register.filter
def get_item(mapping: dict[str, Any] | None, key: str) -> Any:
    return (mapping or {}).get(key)


@register.filter
def cell(value: Any, limit: int = _CELL_CHARACTERS) -> str:
    """A value as it reads in the file (JSON), cut short: vectors are long."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


@register.filter
def duration(seconds: float | None) -> str:
    """``3725`` → ``1 h 2 min``; short, for ETAs and elapsed times."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.inclusion_tag("jobs/_throughput_chart.html")
def throughput_chart(series: list[tuple[float, float]]) -> dict[str, Any]:
    """An inline SVG line chart of rows per second over the job's run."""
    if not series:
        return {"series": []}
    span = max(t for t, _ in series) or 1.0
    peak = max(rate for _, rate in series) or 1.0
    inner_width = _CHART_WIDTH - _CHART_PAD_LEFT - _CHART_PAD
    inner_height = _CHART_HEIGHT - 2 * _CHART_PAD
    bottom = _CHART_HEIGHT - _CHART_PAD
    points: list[tuple[float, float]] = [(_CHART_PAD_LEFT, bottom)]
    points += [
        (
            _CHART_PAD_LEFT + inner_width * t / span,
            bottom - inner_height * rate / peak,
        )
        for t, rate in series
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    area = f"{line} {_CHART_PAD_LEFT + inner_width:.1f},{bottom} {_CHART_PAD_LEFT},{bottom}"
    return {
        "series": series,
        "width": _CHART_WIDTH,
        "height": _CHART_HEIGHT,
        "left": _CHART_PAD_LEFT,
        "right": _CHART_WIDTH - _CHART_PAD,
        "top": _CHART_PAD,
        "bottom": bottom,
        "line": line,
        "area": area,
        "peak": peak,
        "span": span,
    }


@register.filter
def thousands(value: int | None) -> str:
    """``1234567`` → ``1,234,567``."""
    if value is None:
        return ""
    return f"{value:,}"
