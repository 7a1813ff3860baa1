"""Uploads waiting to be queued, and previews rendered with the real engine.

An upload is checked by ingest (the same content checks as `memes add`) and kept under
``<library>/studio-uploads/<token>/<name>`` until it is queued; the token is random and the
only thing a request names, so no request ever names a path on disk.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from werkzeug.utils import secure_filename

from pipeline.config import Config, RenditionSpec
from pipeline.files import write_atomic
from pipeline.imaging import RenderJob, render_meme
from pipeline.ingest import inspect_bytes
from pipeline.overlay import TextBox

UPLOADS = "studio-uploads"
TOKEN = re.compile(r"[0-9a-f]{32}")
KEEP_SECONDS = 2 * 24 * 3600  # an upload nobody queued is swept after two days
# One rendition, not all of them: what the desk looks at while typing.
PREVIEW = RenditionSpec(name="preview", width=720, format="jpeg", quality=80)


@dataclass(frozen=True)
class Draft:
    token: str
    name: str
    path: Path
    width: int
    height: int


def stage(library_root: Path, filename: str, data: bytes, config: Config) -> Draft:
    """Check an upload like `memes add` does (IngestError says why not) and keep it."""
    inspection = inspect_bytes(data, config.limits)
    token = secrets.token_hex(16)
    name = secure_filename(filename or "")[:100] or f"upload.{inspection.ext}"
    path = write_atomic(library_root / UPLOADS / token / name, data, sync=False)
    sweep(library_root)
    return Draft(token, name, path, inspection.width, inspection.height)


def find(library_root: Path, token: str) -> Path | None:
    """The staged file of a token, or None for an unknown or malformed token."""
    if not TOKEN.fullmatch(token or ""):
        return None
    folder = library_root / UPLOADS / token
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return files[0] if files else None


def discard(library_root: Path, token: str) -> None:
    if TOKEN.fullmatch(token or ""):
        shutil.rmtree(library_root / UPLOADS / token, ignore_errors=True)


def sweep(library_root: Path, now: float | None = None) -> None:
    folder = library_root / UPLOADS
    cutoff = (now or time.time()) - KEEP_SECONDS
    for entry in folder.iterdir() if folder.is_dir() else ():
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            continue


def preview(config: Config, original: Path, texts: Sequence[str],
            boxes: tuple[TextBox, ...] | None = None) -> bytes:  # fmt: skip
    """The meme as it will look (texts in their boxes, watermark), one 720 px JPEG;
    RenderError (or the overlay's complaint) if a text does not fit. ``boxes``: a template's
    (``texts`` one per box), else the classic layout (``texts``: top, bottom)."""
    if boxes is None:
        top, bottom = (*texts, "", "")[:2]
        job = RenderJob(slug="preview", original=original, top_text=top, bottom_text=bottom)
    else:
        job = RenderJob(slug="preview", original=original, texts=tuple(texts), boxes=boxes)
    result = render_meme(job, replace(config, renditions=(PREVIEW,)))
    return result.renditions[0].data
