"""Template helpers: times in the site's own zone, shown with the zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask

from pipeline.config import Config
from pipeline.errors import UsageError

LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows


def site_zone(config: Config) -> ZoneInfo:
    """The site's IANA time zone (`site.timezone`, default UTC)."""
    name = getattr(config.site, "timezone", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"site.timezone: unknown time zone {name!r}") from None


def local_text(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def local_input(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime(LOCAL_INPUT) if moment else ""


def parse_local(text: str, zone: ZoneInfo) -> datetime | None:
    """A datetime-local form value read in the site's zone, as UTC; '' is None."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"publish_at: expected a date and time, got {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).replace(microsecond=0)


def install(app: Flask, config: Config) -> None:
    zone = site_zone(config)
    app.jinja_env.filters["local"] = lambda moment: local_text(moment, zone)
    app.jinja_env.filters["local_input"] = lambda moment: local_input(moment, zone)
    app.jinja_env.globals["zone_name"] = zone.key
    app.jinja_env.globals["site_title"] = config.site.title
