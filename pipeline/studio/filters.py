"""Template helpers and form times: wall-clock times in the site's zone (`site.timezone`),
shown with the zone, read with the same rule as `memes add --publish-at`."""

from __future__ import annotations

from datetime import datetime, tzinfo

from flask import Flask

from pipeline.config import Config
from pipeline.ingest import parse_publish_at
from pipeline.library import local_text

LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows


def local_input(moment: datetime | None, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime(LOCAL_INPUT) if moment else ""


def parse_local(text: str, zone: tzinfo) -> datetime | None:
    """A datetime-local form value, a wall-clock time in the site's zone, as UTC; '' is None."""
    return parse_publish_at(text, zone) if text.strip() else None


def install(app: Flask, config: Config) -> None:
    zone = config.site.zone
    app.jinja_env.filters["local"] = lambda moment: local_text(moment, zone) if moment else ""
    app.jinja_env.filters["local_input"] = lambda moment: local_input(moment, zone)
    app.jinja_env.globals["zone_name"] = config.site.timezone
    app.jinja_env.globals["site_title"] = config.site.title
