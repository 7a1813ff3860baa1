"""The Templates page: every template (starters and the library's) with a picture of its
boxes, and, for admins, adding one (upload an image, draw or type its boxes) and removing
one. The boxes are checked by meme_templates.parse_boxes and the template is added by
ingest.add_template and removed by Library.remove_template: what `memes template add` and
`memes template remove` call."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from pipeline import ingest, meme_templates
from pipeline.errors import IngestError, MemesError, UsageError
from pipeline.meme_templates import Template
from pipeline.overlay import ALIGNS, VALIGNS
from pipeline.studio import drafts
from pipeline.studio.app import library, studio_config
from pipeline.studio.auth import admin_required
from pipeline.studio.desk import image_response, preview_response

blueprint = Blueprint("templates", __name__)

PICTURE_WIDTH = 720  # the list's pictures and the drawing surface
BOX_FIELDS = ("x", "y", "width", "height", "align", "valign", "max_font_size")
_BOX_WHERE = re.compile(r"^boxes\[(\d+)\](\.?)")


def version(template: Template) -> str:
    """Changes when the template's image or boxes do: the picture URLs carry it, so a browser
    never keeps the picture of a removed template that was added again under its name."""
    text = template.sha256 + meme_templates.boxes_to_json(template.boxes)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _template_or_404(name: str) -> Template:
    try:
        return library().template(name)
    except MemesError:
        abort(404, f"No template '{name}'.")


def number(text: str, where: str) -> float:
    """A box coordinate as typed: a fraction (0.25) or a percentage (25%)."""
    value = text.strip().replace(",", ".")
    percent = value.endswith("%")
    try:
        result = float(value.removesuffix("%").strip())
    except ValueError:
        raise UsageError(f"{where}: expected a fraction (0.25) or a percentage (25%), "
                         f"got {text!r}") from None  # fmt: skip
    return result / 100 if percent else result


def form_boxes(form: Any) -> list[dict[str, str]]:
    """The box rows of the form, as typed (one dict per row, in order)."""
    columns = {key: form.getlist(f"box_{key}") for key in BOX_FIELDS}
    count = max((len(values) for values in columns.values()), default=0)
    rows = [{key: (columns[key][i] if i < len(columns[key]) else "").strip() for key in BOX_FIELDS}
            for i in range(count)]  # fmt: skip
    return [row for row in rows if any(row[k] for k in ("x", "y", "width", "height"))]


def box_data(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Rows as the mappings meme_templates.parse_boxes reads (what a --boxes file holds)."""
    out = []
    for n, row in enumerate(rows, start=1):
        data: dict[str, Any] = {key: number(row[key], f"box {n} {key}")
                                for key in ("x", "y", "width", "height") if row[key]}  # fmt: skip
        for key in ("align", "valign"):
            if row[key]:
                data[key] = row[key]
        if row["max_font_size"]:
            size = row["max_font_size"]
            data["max_font_size"] = int(size) if size.isdigit() else size
        out.append(data)
    return out


def _box_error(message: str) -> str:
    """parse_boxes names a box 'boxes[0].x'; the page numbers them from 1, as 'box 1 x'."""
    return _BOX_WHERE.sub(lambda m: f"box {int(m.group(1)) + 1}" + (" " if m.group(2) else ""),
                          message)  # fmt: skip


def _page(values: dict[str, str], boxes: list[dict[str, str]], errors: dict[str, str],
          upload: dict[str, Any] | None = None, status: int = 200) -> tuple[str, int]:  # fmt: skip
    lib = library()
    config = studio_config()
    return render_template("templates.html", templates=lib.templates(),
                           used=lib.templates_in_use(),
                           version=version, values=values, boxes=boxes, errors=errors,
                           upload=upload, aligns=ALIGNS, valigns=VALIGNS,
                           max_bytes=config.limits.max_bytes), status  # fmt: skip


@blueprint.route("/templates")
def index() -> Any:
    return _page({}, [], {})


@blueprint.route("/templates/<name>/picture")
def picture(name: str) -> Any:
    """The template with its boxes outlined and numbered (`memes template show --out`)."""
    template = _template_or_404(name)
    data = meme_templates.picture(library().template_path(template), template.boxes,
                                  max_width=PICTURE_WIDTH, kind="JPEG")  # fmt: skip
    return image_response(data, "image/jpeg")


@blueprint.route("/templates/<name>/preview")
def preview(name: str) -> Any:
    """A meme of the template with the query's box texts (`text`, one per box), rendered by
    the real engine: the Make page's live preview."""
    template = _template_or_404(name)
    return preview_response(library().template_path(template), template.boxes)


@blueprint.route("/uploads/<token>/picture")
def upload_picture(token: str) -> Any:
    """A staged upload as the browser can show it (oriented, sRGB, JPEG): what boxes are
    drawn on."""
    original = drafts.find(library().root, token)
    if original is None:
        abort(404, "No such upload (it was used or has expired).")
    data = meme_templates.picture(original, (), max_width=PICTURE_WIDTH, kind="JPEG")
    return image_response(data, "image/jpeg")


@blueprint.route("/templates", methods=["POST"])
@admin_required
def add() -> Any:
    """`memes template add`: the image (a file, or an upload the page staged), its name, its
    boxes (drawn or typed; none: the classic top and bottom boxes), licence and credit."""
    config = studio_config()
    lib = library()
    form = request.form
    values = {k: form.get(k, "") for k in ("name", "licence", "credit")}
    rows = form_boxes(form)
    errors: dict[str, str] = {}
    staged: tuple[str, Path] | None = None  # (token, file)
    item = request.files.get("image")
    if item is not None and (item.filename or item.content_length):
        data = item.read(config.limits.max_bytes + 1)
        if len(data) > config.limits.max_bytes:
            abort(413, f"over limits.max_bytes ({config.limits.max_bytes} bytes)")
        try:
            draft = drafts.stage(lib.root, item.filename or "", data, config)
            staged = (draft.token, draft.path)
        except IngestError as exc:
            errors["image"] = f"{item.filename or 'upload'}: {exc}"
    elif form.get("upload"):
        path = drafts.find(lib.root, form["upload"])
        staged = (form["upload"], path) if path is not None else None
        if path is None:
            errors["image"] = "the upload has expired; add the image again"
    else:
        errors["image"] = "Add an image."
    try:
        meme_templates.check_name(values["name"])
    except UsageError as exc:
        errors["name"] = str(exc)
    boxes = None
    try:
        if rows:
            boxes = meme_templates.parse_boxes(box_data(rows), "boxes")
    except UsageError as exc:
        errors["boxes"] = _box_error(str(exc))
    upload = None
    if staged is not None:
        token, path = staged
        upload = {"token": token, "name": path.name,
                  "picture": url_for("templates.upload_picture", token=token)}  # fmt: skip
    if not errors and staged is not None:
        token, path = staged
        try:
            made = ingest.add_template(lib, config, path, values["name"], boxes,
                                       values["licence"], values["credit"])  # fmt: skip
        except (UsageError, IngestError) as exc:
            message = str(exc).replace(str(path), path.name)
            errors[_field_of(message)] = message
        else:
            drafts.discard(lib.root, token)
            flash(f"Added template {made.name} ({len(made.boxes)} "
                  f"box{'' if len(made.boxes) == 1 else 'es'})", "ok")  # fmt: skip
            return redirect(url_for("templates.index") + f"#t-{made.name}", 303)
    return _page(values, rows, errors, upload, 422)


def _field_of(message: str) -> str:
    head = message.split(":", 1)[0]
    if head.startswith("template"):
        return "name"
    if head in ("licence", "credit"):
        return head
    return "image"


@blueprint.route("/templates/<name>/remove", methods=["POST"])
@admin_required
def remove(name: str) -> Any:
    """`memes template remove [--keep-copies]`: refused while memes (other than removed
    ones) use it, unless each keeps its own copy of the boxes."""
    keep = request.form.get("keep_copies") == "1"
    try:
        copied = library().remove_template(name, keep_copies=keep)
    except MemesError as exc:
        flash(str(exc).replace("--keep-copies", "“Remove, keep copies”"), "error")
    else:
        kept = f"; {len(copied)} meme(s) keep their own copy of its boxes" if copied else ""
        flash(f"Removed template {name}{kept}", "ok")
    return redirect(url_for("templates.index"), 303)
