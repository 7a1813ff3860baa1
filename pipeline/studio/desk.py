"""The desk's pages: make, queue, publish now, published, newsletter, and the published
`file://` gallery. Each route reads a form, calls the function the CLI calls, and shows the
outcome; the work lives in ingest, library, imaging, publish and newsletter."""

from __future__ import annotations

import hashlib
import html
import io
import mimetypes
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
    url_for,
)
from werkzeug.security import safe_join

from pipeline import ingest, newsletter
from pipeline import publish as publishing
from pipeline.errors import IngestError, LockedError, MemesError, UsageError
from pipeline.library import PURGED, Edition, Library, Meme, utcnow
from pipeline.newsletter.compose import ARCHIVE_CSP as MAIL_CSP
from pipeline.overlay import OverlayTextError, TextBox
from pipeline.publish import PublishReport
from pipeline.storage import open_storage
from pipeline.studio import drafts
from pipeline.studio.app import library, studio_config
from pipeline.studio.auth import admin_required
from pipeline.studio.filters import local_input, parse_local

blueprint = Blueprint("desk", __name__)

TEXT_FIELDS = ("caption", "title", "alt", "credit", "top", "bottom")
PAGE_SIZE = 48  # published memes per page
REMOVED_SHOWN = 50  # the latest removals the queue page offers to restore
GALLERY_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src * data: blob:; "
    "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: The next edition's preview: mail HTML, no script, sandboxed; the sandbox keeps the studio's
#: origin (no script may run to use it) so the pictures it loads from /gallery/ are signed in.
NEWSLETTER_CSP = (
    "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox allow-same-origin"
)


# --- form helpers ----------------------------------------------------------------------------


def field_of(message: str) -> str:
    """Which form field an ingest complaint is about ('' for the form as a whole); a
    template's box N is field 'textN'."""
    if box := re.match(r"-*text (\d+)\b", message):
        return f"text{box.group(1)}"
    if message.startswith("template"):
        return "template"
    head = message.split(":", 1)[0].strip().lstrip("-").replace("-", "_")
    if head in ("top_text", "top"):
        return "top"
    if head in ("bottom_text", "bottom"):
        return "bottom"
    if head in (*TEXT_FIELDS, "category", "tags", "publish_at"):
        return head
    for words, name in (("top text", "top"), ("bottom text", "bottom"), ("category", "category")):
        if words in message:
            return name
    return ""


def _tags(text: str) -> tuple[str, ...]:
    return tuple(t for t in (part.strip() for part in text.split(",")) if t)


def _form_values() -> dict[str, Any]:
    """What the form says, as typed (shown again beside an error)."""
    return {k: request.form.get(k, "") for k in (*TEXT_FIELDS, "category", "tags", "publish_at")}


def _form_fields() -> dict[str, Any]:
    """What the form says, as `memes add`/`memes edit` keyword arguments."""
    form = request.form
    return {
        "caption": form.get("caption", ""),
        "title": form.get("title", ""),
        "category": form.get("category", ""),
        "tags": _tags(form.get("tags", "")),
        "alt": form.get("alt", ""),
        "credit": form.get("credit", ""),
        "top_text": form.get("top", ""),
        "bottom_text": form.get("bottom", ""),
        "publish_at": parse_local(form.get("publish_at", ""), studio_config().site.zone),
    }


def _queue_positions(lib: Library, memes: list[Meme]) -> dict[str, str]:
    """Which publish run takes each queued meme: runs take `publish.batch_size` due memes,
    oldest publish time first."""
    batch = studio_config().publish.batch_size
    now = utcnow()
    due = [m for m in memes if m.publish_at <= now]
    labels = {}
    for index, meme in enumerate(due):
        run = index // batch
        labels[meme.slug] = "the next run" if run == 0 else f"run {run + 1} from now"
    for meme in memes:
        labels.setdefault(meme.slug, "the first run after its time")
    return labels


def _queued(lib: Library) -> list[Meme]:
    return sorted(lib.memes("queued", renditions=False), key=lambda m: (m.publish_at, m.id))


def _meme_or_404(slug: str) -> Meme:
    try:
        return library().get(slug)
    except MemesError:
        abort(404, f"No meme '{slug}'.")


def image_response(data: bytes, content_type: str, download_name: str | None = None) -> Response:
    """An image the URL names completely (meme, rendition or preview text): the browser may
    keep it a few minutes, so a queue page does not render every thumbnail again."""
    response = Response(data, content_type=content_type)
    response.headers["Cache-Control"] = "private, max-age=300"
    if download_name:
        response.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response


def preview_response(original: Path, boxes: tuple[TextBox, ...] | None = None,
                     texts: Sequence[str] | None = None) -> Response:  # fmt: skip
    """The live preview: the texts of the query (a template's boxes: `text`, one per box;
    else `top` and `bottom`) unless given, rendered by the real engine."""
    if texts is None:
        texts = (request.args.getlist("text") if boxes is not None
                 else [request.args.get("top", ""), request.args.get("bottom", "")])  # fmt: skip
    try:
        data = drafts.preview(studio_config(), original, texts, boxes)
    except (MemesError, OverlayTextError) as exc:
        message = str(exc).removeprefix("preview: ")
        return Response(message, 422, content_type="text/plain; charset=utf-8")
    return image_response(data, "image/jpeg")


def meme_boxes(meme: Meme) -> tuple[TextBox, ...] | None:
    """The boxes a meme is drawn with (Library.boxes_of: its own copy, else its template's;
    None for the classic layout, or a template gone since)."""
    try:
        return library().boxes_of(meme)
    except MemesError:
        return None


# --- make ------------------------------------------------------------------------------------


@blueprint.route("/")
def home() -> Any:
    return redirect(url_for("desk.make"))


def _make_page(values: dict[str, Any], errors: dict[str, str], files: list[dict[str, str]],
               status: int = 200) -> tuple[str, int]:  # fmt: skip
    from pipeline.studio.templates_desk import version

    config = studio_config()
    templates = library().templates()
    chosen = next((t for t in templates if t.name == values.get("template")), None)
    return render_template("make.html", values=values, errors=errors, files=files,
                           categories=config.categories, templates=templates,
                           boxes=len(chosen.boxes) if chosen else 0, version=version,
                           max_bytes=config.limits.max_bytes), status  # fmt: skip


@blueprint.route("/make", methods=["GET"])
def make() -> Any:
    return _make_page({"template": request.args.get("template", "")}, {}, [])


@blueprint.route("/uploads", methods=["POST"])
def upload() -> Any:
    """One file, checked and kept; JSON for the page's drop zone."""
    config = studio_config()
    item = request.files.get("file")
    if item is None:
        return jsonify(error="no file in the request"), 400
    data = item.read(config.limits.max_bytes + 1)
    if len(data) > config.limits.max_bytes:
        abort(413, f"over limits.max_bytes ({config.limits.max_bytes} bytes)")
    try:
        draft = drafts.stage(library().root, item.filename or "", data, config)
    except IngestError as exc:
        return jsonify(name=item.filename or "", error=str(exc)), 422
    return jsonify(token=draft.token, name=draft.name, width=draft.width, height=draft.height,
                   preview=url_for("desk.upload_preview", token=draft.token))  # fmt: skip


@blueprint.route("/uploads/<token>/preview")
def upload_preview(token: str) -> Any:
    original = drafts.find(library().root, token)
    if original is None:
        abort(404, "No such upload (it was queued or has expired).")
    return preview_response(original)


@blueprint.route("/make", methods=["POST"])
def make_post() -> Any:
    """Queue every uploaded file with the fields, through ingest.add_files (`memes add`)."""
    config = studio_config()
    lib = library()
    values = _form_values()
    if request.form.get("template"):
        return _make_from_template(request.form["template"], values)
    staged: list[tuple[str, str, Path]] = []  # (token, name, path)
    file_errors: list[dict[str, str]] = []
    for item in request.files.getlist("files"):
        if not item.filename and not item.content_length:
            continue
        data = item.read(config.limits.max_bytes + 1)
        if len(data) > config.limits.max_bytes:
            abort(413, f"over limits.max_bytes ({config.limits.max_bytes} bytes)")
        try:
            draft = drafts.stage(lib.root, item.filename or "", data, config)
        except IngestError as exc:
            file_errors.append({"name": item.filename or "upload", "error": str(exc)})
            continue
        staged.append((draft.token, draft.name, draft.path))
    for token in request.form.getlist("upload"):
        path = drafts.find(lib.root, token)
        if path is None:
            file_errors.append({"name": "upload", "error": "expired; add the file again"})
        else:
            staged.append((token, path.name, path))
    files = [{"token": t, "name": n} for t, n, _ in staged]
    try:
        fields = ingest.MemeFields(**_form_fields())
        ingest.validate_fields(fields, config)
    except (UsageError, IngestError) as exc:
        return _make_page(values, {field_of(str(exc)) or "form": str(exc)},
                          files + file_errors, 422)  # fmt: skip
    if not staged:
        errors = {"files": "Add at least one image."} if not file_errors else {}
        return _make_page(values, errors, file_errors, 422)
    report = ingest.add_files(lib, config, [(path, fields) for _, _, path in staged])
    by_path = {str(path): (token, name) for token, name, path in staged}
    refused = {p for p, _ in report.rejected}
    for token, _name, path in staged:
        if str(path) not in refused:
            drafts.discard(lib.root, token)
    for warning in report.warnings:
        for path_text, (_token, name) in by_path.items():
            warning = warning.replace(path_text, name)
        flash(warning, "warning")
    rejected = [{"token": by_path[p][0], "name": by_path[p][1], "error": reason}
                for p, reason in report.rejected if p in by_path]  # fmt: skip
    if report.added:
        flash(f"Queued: {', '.join(m.slug for m in report.added)}", "ok")
    if rejected or file_errors:
        return _make_page(values, {}, rejected + file_errors, 422)
    return redirect(url_for("desk.queue"), 303)


def _make_from_template(name: str, values: dict[str, Any]) -> Any:
    """`memes add --template NAME --text ...`: the same checks and ingest.add_files."""
    config = studio_config()
    lib = library()
    texts = tuple(request.form.getlist("text"))
    values.update(template=name, texts=texts, top="", bottom="")
    if request.form.getlist("upload") or any(f.filename for f in request.files.getlist("files")):
        error = "A template brings its image: pick no template to queue your files."
        return _make_page(values, {"files": error}, [], 422)
    try:
        ingest.check_text_count(texts, lib.template(name))
        fields = ingest.MemeFields(**{**_form_fields(), "top_text": "", "bottom_text": ""},
                                   template=name, texts=texts)  # fmt: skip
        fields = ingest.validate_fields(fields, config)
    except MemesError as exc:
        return _make_page(values, {field_of(str(exc)) or "form": str(exc)}, [], 422)
    report = ingest.add_files(lib, config, [(Path(), fields)])
    for warning in report.warnings:
        flash(warning, "warning")
    problems = [reason for _, reason in report.rejected]
    problems += [f"already added as {slug}" for _, slug in report.already]
    if problems:
        return _make_page(values, {field_of(problems[0]) or "form": problems[0]}, [], 422)
    flash(f"Queued: {', '.join(m.slug for m in report.added)}", "ok")
    return redirect(url_for("desk.queue"), 303)


# --- queue, edit, renditions, remove ---------------------------------------------------------


@blueprint.route("/queue")
def queue() -> Any:
    lib = library()
    memes = _queued(lib)
    return render_template("queue.html", memes=memes, runs=_queue_positions(lib, memes),
                           removed=_restorable(lib), may_restore=may_restore)  # fmt: skip


def _restorable(lib: Library) -> list[Meme]:
    """Removed memes whose original is kept (not purged), latest removal first."""
    removed = [m for m in lib.memes("removed", renditions=False)
               if not m.sha256.startswith(PURGED)]  # fmt: skip
    return sorted(removed, key=lambda m: (m.updated_at, m.id), reverse=True)[:REMOVED_SHOWN]


def may_restore(meme: Meme) -> bool:
    """Editors restore what was removed from the queue; bringing back a meme that had been on
    the site is for admins, as taking it down was."""
    return meme.published_at is None or g.user.role == "admin"


def _edit_page(meme: Meme, values: dict[str, Any], errors: dict[str, str],
               status: int = 200) -> tuple[str, int]:  # fmt: skip
    boxes = meme_boxes(meme)
    return render_template("edit.html", meme=meme, values=values, errors=errors,
                           boxes=len(boxes) if boxes else 0, due=meme.publish_at <= utcnow(),
                           categories=studio_config().categories), status  # fmt: skip


def _values_of(meme: Meme) -> dict[str, Any]:
    return {
        "caption": meme.caption, "title": meme.title, "alt": meme.alt, "credit": meme.credit,
        "top": meme.top_text, "bottom": meme.bottom_text, "category": meme.category,
        "tags": ", ".join(meme.tags), "template": meme.template, "texts": meme.texts,
        "publish_at": local_input(meme.publish_at, studio_config().site.zone),
    }  # fmt: skip


@blueprint.route("/memes/<slug>", methods=["GET"])
def edit(slug: str) -> Any:
    meme = _meme_or_404(slug)
    return _edit_page(meme, _values_of(meme), {})


@blueprint.route("/memes/<slug>", methods=["POST"])
def edit_post(slug: str) -> Any:
    """`memes edit`: ingest.check_edit then library.edit, all fields at once."""
    meme = _meme_or_404(slug)
    values = _form_values()
    try:
        changes = _form_fields()
        shown = local_input(meme.publish_at, studio_config().site.zone)
        if meme.status != "queued" or values["publish_at"] == shown:
            # a published meme's time is history; an unchanged field keeps the exact second
            changes.pop("publish_at")
        if changes["alt"] == meme.alt:  # untouched: an alt never typed follows the texts
            changes.pop("alt")
        if meme.template:  # `memes edit --text N=...`, every box
            texts = request.form.getlist("text")
            values.update(template=meme.template, texts=texts)
            changes.update(top_text=None, bottom_text=None,
                           box_texts=dict(enumerate(texts, start=1)))  # fmt: skip
        checked = ingest.check_edit(library(), studio_config(), slug, **changes)
        library().edit(slug, **checked)
    except (UsageError, IngestError) as exc:
        return _edit_page(meme, values, {field_of(str(exc)) or "form": str(exc)}, 422)
    flash(f"Saved {slug}" + (" (reaches the site at the next publish)"
                             if meme.status == "published" else ""), "ok")  # fmt: skip
    return redirect(url_for("desk.queue" if meme.status == "queued" else "desk.published"), 303)


@blueprint.route("/memes/<slug>/preview")
def meme_preview(slug: str) -> Any:
    meme = _meme_or_404(slug)
    boxes = meme_boxes(meme)
    texts = meme.texts if boxes is not None and "text" not in request.args else None
    return preview_response(library().original_path(meme), boxes, texts)


@blueprint.route("/memes/<slug>/renditions")
def renditions(slug: str) -> Any:
    meme = _meme_or_404(slug)
    return render_template("renditions.html", meme=meme, specs=studio_config().renditions)


@blueprint.route("/memes/<slug>/renditions/<name>")
def rendition(slug: str, name: str) -> Any:
    """One rendition exactly as publish makes it (through the same render cache)."""
    meme = _meme_or_404(slug)
    config = studio_config()
    if name not in {spec.name for spec in config.renditions}:
        abort(404, f"No rendition '{name}'.")
    download = request.args.get("download")
    stored = next((a for a in meme.renditions if a.name == name), None)
    if meme.status == "published" and stored is not None:
        # what the site serves: the very object in storage (no render for a gallery page)
        data = open_storage(config.storage).get(stored.key)
        if data is not None:
            extension = stored.key.rsplit(".", 1)[-1]
            return image_response(data, stored.content_type,
                          f"{slug}-{name}.{extension}" if download else None)  # fmt: skip
    results, failures = publishing.render_memes(library(), config, [meme])
    if failures:
        return Response(failures[0].reason, 422, content_type="text/plain; charset=utf-8")
    image = next(r for r in results[0].renditions if r.name == name)
    return image_response(image.data, image.content_type,
                  f"{slug}-{name}.{image.extension}" if download else None)  # fmt: skip


@blueprint.route("/memes/<slug>/remove", methods=["POST"])
def remove(slug: str) -> Any:
    """`memes remove`: a queued meme leaves the queue; a published one (admins) leaves the
    site, index first."""
    meme = _meme_or_404(slug)
    if meme.status == "published" and g.user.role != "admin":
        abort(403, "Removing a published meme needs an admin account.")
    try:
        publishing.remove(library(), studio_config(), slug)
    except LockedError:
        flash("A publish is running; remove it again when it has finished.", "error")
    except MemesError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Removed {slug}", "ok")
    return redirect(url_for("desk.queue" if meme.status == "queued" else "desk.published"), 303)


@blueprint.route("/memes/<slug>/restore", methods=["POST"])
def restore(slug: str) -> Any:
    """`memes restore`: a removed meme goes back to the queue; one that had been published
    returns to its old place at the next publish."""
    meme = _meme_or_404(slug)
    if not may_restore(meme):
        abort(403, "Restoring a meme that had been published needs an admin account.")
    try:
        library().restore(slug)
    except MemesError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Restored {slug}" + (" (back on the site at the next publish)"
                                    if meme.published_at else ""), "ok")  # fmt: skip
    return redirect(url_for("desk.queue"), 303)


# --- publish now -----------------------------------------------------------------------------


def publish_running(lib: Library) -> bool:
    """Whether a publish (from cron, the CLI or the studio) holds the library's lock."""
    try:
        with publishing.publish_lock(lib):
            return False
    except LockedError:
        return True


def _publish_page(report: Any = None, error: str | None = None, status: int = 200) -> Any:
    lib = library()
    return render_template("publish.html", running=publish_running(lib), report=report,
                           due=len(lib.due()), error=error), status  # fmt: skip


@blueprint.route("/publish")
def publish_page() -> Any:
    return _publish_page()


@blueprint.route("/publish/status")
def publish_status() -> Any:
    return jsonify(running=publish_running(library()))


@blueprint.route("/publish", methods=["POST"])
@admin_required
def publish_now() -> Any:
    """The same publish as cron, under the same locks; the page shows its report."""
    try:
        report = publishing.publish(library(), studio_config())
    except LockedError:
        return _publish_page(error="A publish is running; wait for it to finish.", status=409)
    except MemesError as exc:
        return _publish_page(error=str(exc), status=502)
    return _publish_page(report=report)


# --- published -------------------------------------------------------------------------------

NOTHING_PUBLISHED = ("Nothing is published yet: the gallery shows here after the first publish "
                     "(Publish now, or `memes publish`).")  # fmt: skip


def _matches(meme: Meme, text: str, tag: str, category: str) -> bool:
    if category and meme.category != category:
        return False
    if tag and tag.lower() not in meme.tags:
        return False
    if text:
        haystack = " ".join((meme.title, meme.caption, meme.alt, meme.credit, meme.top_text,
                             meme.bottom_text, *meme.texts, meme.slug, *meme.tags)
                            ).casefold()  # fmt: skip
        return all(word in haystack for word in text.casefold().split())
    return True


@blueprint.route("/published")
def published() -> Any:
    query = {k: request.args.get(k, "").strip() for k in ("q", "tag", "category")}
    query["tag"] = query["tag"].lstrip("#").strip()  # as the list shows it: #tag
    everything = library().published()
    memes = [m for m in reversed(everything)
             if _matches(m, query["q"], query["tag"], query["category"])]  # fmt: skip
    page = max(1, request.args.get("page", 1, type=int) or 1)
    pages = max(1, -(-len(memes) // PAGE_SIZE))
    shown = memes[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return render_template("published.html", memes=shown, query=query, page=page, pages=pages,
                           total=len(memes), nothing="" if everything else NOTHING_PUBLISHED,
                           categories=studio_config().categories,
                           specs=studio_config().renditions)  # fmt: skip


# --- newsletter ------------------------------------------------------------------------------


@blueprint.route("/newsletter")
def newsletter_page() -> Any:
    lib = library()
    return render_template("newsletter.html", status=newsletter.status(lib, studio_config()),
                           editions=list(reversed(lib.editions())))  # fmt: skip


@blueprint.route("/newsletter/preview")
def newsletter_preview() -> Any:
    page = newsletter.preview(library(), studio_config())
    if page is None:
        message = "Nothing pending: no meme published since the last edition."
        return render_template("error.html", code=404, message=message), 404
    g.csp = NEWSLETTER_CSP  # the mail's own inline styles; no script, sandboxed
    data = page.encode("utf-8")
    config = studio_config()
    if not config.storage.is_s3:  # its images and links, from this studio's /gallery/
        data = rebase(data, config.site.base_url, request.url_root + "gallery/")
    return Response(data, content_type="text/html; charset=utf-8")


def _newsletter_step(action: Callable[[], tuple[list[Edition], PublishReport]],
                     done: Callable[[list[Edition]], str]) -> Any:  # fmt: skip
    """Run one newsletter action through the function the CLI calls (it sends, then puts the
    archive up) and show what it did, its warnings and errors on the newsletter page."""
    try:
        editions, report = action()
        flash(done(editions), "ok")
        for line in [*report.warnings, *report.errors]:
            flash(line, "error")
    except MemesError as exc:
        flash(str(exc), "error")
    return redirect(url_for("desk.newsletter_page"), 303)


@blueprint.route("/newsletter/resume", methods=["POST"])
@admin_required
def newsletter_resume() -> Any:
    return _newsletter_step(
        lambda: publishing.send_newsletter(library(), studio_config(), resume=True),
        lambda sent: f"Sent again: {len(sent)} edition(s)",
    )


@blueprint.route("/newsletter/confirm", methods=["POST"])
@admin_required
def newsletter_confirm() -> Any:
    kind = request.form.get("kind", "")
    number = request.form.get("number", "")
    if kind not in ("regular", "special") or not number.isdigit():
        abort(400, "kind and number of an edition expected")

    def confirm() -> tuple[list[Edition], PublishReport]:
        edition, report = publishing.confirm_edition(library(), studio_config(), kind,
                                                     int(number))  # fmt: skip
        return [edition], report

    return _newsletter_step(confirm, lambda e: f"{e[0].kind} #{e[0].number}: {e[0].status}")


@blueprint.route("/newsletter/special", methods=["POST"])
@admin_required
def newsletter_special() -> Any:
    subject = request.form.get("subject", "").strip()
    if not subject:
        flash("subject: a special edition needs a subject", "error")
        return redirect(url_for("desk.newsletter_page"), 303)
    body = request.form.get("body", "").strip() or None
    slugs = _tags(request.form.get("slugs", ""))
    return _newsletter_step(
        lambda: publishing.send_newsletter(library(), studio_config(), special=True,
                                           subject=subject, body=body, slugs=slugs),
        lambda e: f"Sent special #{e[0].number}: {e[0].subject}",
    )  # fmt: skip


# --- the published file:// gallery -----------------------------------------------------------

#: Documents whose text names ``site.base_url``: served with the studio's own /gallery/ in its
#: place, so the gallery works here whatever origin the site's documents were written for.
REBASED_SUFFIXES = (".html", ".json", ".xml", ".txt", ".css", ".js")
#: A newsletter archive page is mail HTML: inline styles, no script (compose.ARCHIVE_CSP).
ARCHIVE_CSP = MAIL_CSP + "; frame-ancestors 'none'"


def rebase(data: bytes, old: str, new: str) -> bytes:
    """``data`` with every URL under ``old`` moved under ``new`` (also where HTML escaped it)."""
    for before, after in {(old, new), (html.escape(old), html.escape(new))}:
        data = data.replace(before.encode(), after.encode())
    return data


@blueprint.route("/gallery/", defaults={"key": "index.html"})
@blueprint.route("/gallery/<path:key>")
def gallery(key: str) -> Any:
    """The published file:// folder, as the site serves it; its documents rebased from
    ``site.base_url`` onto this studio's /gallery/ (the files on disk stay as published)."""
    config = studio_config()
    if config.storage.is_s3:
        abort(404, "The gallery is in S3 storage; open it at its public URL.")
    rebased = key.endswith(REBASED_SUFFIXES)
    g.csp = ARCHIVE_CSP if key.startswith(newsletter.ARCHIVE_PREFIX) and key.endswith(".html") \
        else GALLERY_CSP
    if not rebased:
        return send_from_directory(config.storage.local_path, key, max_age=60)
    path = safe_join(str(config.storage.local_path), key)
    if path is None or not Path(path).is_file():
        abort(404, NOTHING_PUBLISHED if key == "index.html" else None)
    data = rebase(Path(path).read_bytes(), config.site.base_url, request.url_root + "gallery/")
    mimetype = mimetypes.guess_type(key)[0] or "application/octet-stream"
    response = send_file(io.BytesIO(data), mimetype=mimetype, max_age=60,
                         etag=hashlib.sha256(data).hexdigest()[:32])  # fmt: skip
    response.vary.add("Host")
    return response


@blueprint.route("/favicon.ico")
def favicon() -> Any:
    """No icon (the studio's pages say so with a data: link; the newsletter archive's mail HTML
    cannot), rather than a 404 in the console."""
    response = Response(status=204)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response
