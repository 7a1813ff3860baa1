"""The `memes` command: parse arguments, call one library function, print text or --json.

Errors from library code (MemesError) become one line on stderr and the error's exit code;
no traceback ever reaches staff or cron.
"""

from __future__ import annotations

import json
import select
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import __version__
from pipeline import config as config_module
from pipeline.config import Config
from pipeline.errors import EXIT_FAILED, MemesError, UsageError
from pipeline.files import Unreadable, read_text_capped, write_atomic
from pipeline.library import MEME_COLUMNS, STATUSES, Library, Meme, local_text

# --- plumbing --------------------------------------------------------------------------------


class App:
    """Per-invocation state: the config (parsed once, on first use) and the library."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config: Config | None = None
        self._library: Library | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = config_module.load(self.config_path)
        return self._config

    @property
    def library(self) -> Library:
        if self._library is None:
            self._library = Library(self.config.library)
        return self._library

    def close(self) -> None:
        if self._library is not None:
            self._library.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd stopping the unit, a cron timeout, kill): unwind like Ctrl-C, so a
    transaction rolls back and the publish locks are released before the process exits.

    Python drops an exception raised where it cannot propagate (a fork hook, a finalizer): a
    SIGTERM landing there is lost and the run simply completes, which is safe."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


# What a terminal would act on rather than show: C0 and C1 controls (ESC starts cursor moves,
# screen clears, OSC 8 hyperlinks; a newline or tab fakes a row), DEL, the bidi embeddings,
# overrides and isolates (they reorder what follows), and the Unicode line separators.
_UNSAFE_CHARS = [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                 *range(0x2066, 0x206A), 0x2028, 0x2029]  # fmt: skip
_SHOWN = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _UNSAFE_CHARS}
_SHOWN.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_JSON_ESCAPED = {code: f"\\u{code:04x}" for code in _UNSAFE_CHARS if code >= 0x7F}


def shown(value: object) -> str:
    """Data (a title, a file name, an error naming either) as it may reach a person's
    terminal: every control character visible as an escape, so a stored value can never
    move the cursor, clear the screen, make a hyperlink or fake a row."""
    return str(value).translate(_SHOWN)


def say(*fields: object, err: bool = False) -> None:
    """One line for a person: the fields, each passed through shown(), joined by tabs."""
    click.echo("\t".join(shown(f) for f in fields), err=err)


JSON_META = "memes.json"


class Command(click.Command):
    def get_short_help_str(self, limit: int = 45) -> str:
        """The help's first paragraph, whole: click cuts it at the terminal width with '...'."""
        if self.short_help is None and self.help:
            return " ".join(self.help.split("\n\n")[0].split())
        return super().get_short_help_str(limit)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Remembers whether the command was asked for --json, for MemesGroup's errors (also
        for an error in the arguments themselves)."""
        takes_json = any(p.name == "as_json" for p in self.params)
        ctx.meta[JSON_META] = takes_json and "--json" in args
        rest = super().parse_args(ctx, args)
        ctx.meta[JSON_META] = bool(ctx.params.get("as_json"))
        return rest


class Group(Command, click.Group):
    command_class = Command


def usage_line(exc: click.UsageError) -> str:
    """Click's complaint about the command line as one line: the command, what is wrong,
    where to read more (click would print the usage, a hint and the error on 4 lines)."""
    words = exc.ctx.command_path.split()[1:] if exc.ctx else []
    where = " ".join(["memes", *words, "--help"])
    return ": ".join([*([" ".join(words)] if words else []),
                      f"{' '.join(exc.format_message().split())} ({where})"])  # fmt: skip


class MemesGroup(Group):
    group_class = Group

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # memes --bogus
            say(f"memes: {usage_line(exc)}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a subcommand's options or arguments
            self._fail(ctx, usage_line(exc), exc.exit_code)
        except MemesError as exc:
            self._fail(ctx, str(exc), exc.exit_code)
        except BrokenPipeError as exc:
            if stdout_gone():  # `memes list | head`: click ends quietly (exit 1)
                raise
            self._fail(ctx, describe_os_error(exc), EXIT_FAILED)  # a socket, say
        except OSError as exc:  # an I/O error nothing below turned into a sentence
            self._fail(ctx, describe_os_error(exc), EXIT_FAILED)
        except Terminated:
            self._fail(ctx, "terminated; the next run completes the work", 143)
        except KeyboardInterrupt:
            self._fail(ctx, "interrupted", 130)

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int) -> None:
        """One line on stderr; for a --json command also {"error", "exit"} on stdout."""
        say(f"memes: {message}", err=True)
        if ctx.meta.get(JSON_META):
            emit_json({"error": message, "exit": code})
        ctx.exit(code)


def stdout_gone() -> bool:
    """Whether nobody reads our stdout any more (the pipe's reader closed it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a file (a test runner's buffer)
        return False


def describe_os_error(exc: OSError) -> str:
    """'<file>: <reason>' for an OSError, without its errno clutter."""
    reason = exc.strerror or exc.__class__.__name__
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


pass_app = click.make_pass_decorator(App)


F = TypeVar("F", bound=Callable[..., Any])


def json_option(help: str = "Print JSON instead of text.") -> Callable[[F], F]:
    """The one `--json` flag every command that can print JSON takes (as `as_json`)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def emit_json(data: Any) -> None:
    """Indented for a person at a terminal; compact (and several times faster to write, which
    shows on `memes list --json` of a large library) for cron and pipes."""
    if sys.stdout.isatty():
        text = json.dumps(data, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # json escapes C0 controls itself; C1 and bidi controls are escaped here, which is the same
    # JSON, so no string in it can act on a terminal either.
    click.echo(text.translate(_JSON_ESCAPED))


@contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); silent for cron, pipes and --json."""
    if not enabled or total <= 1 or not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


class FiniteRange(click.FloatRange):
    """A finite number from 0 to ``max`` (seconds, days): nan and inf are refused too."""

    name = "number"

    def __init__(self, max: float) -> None:
        super().__init__(min=0, max=max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:  # nan passes every comparison a range makes
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


def parse_datetime_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An ISO 8601 time; without an offset, a wall-clock time in the config's site.timezone."""
    if value is None:
        return None
    from pipeline.ingest import parse_publish_at

    try:
        parse_publish_at(value)  # the form first: a usage error needs no config
    except UsageError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], param=param) from None
    app = ctx.find_object(App)
    assert app is not None  # the group made it
    return parse_publish_at(value, app.config.site.zone)


@click.group(cls=MemesGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar=config_module.CONFIG_ENV,
    help="Config file (default: $MEMES_CONFIG, else ./config.yaml).",
)
@click.version_option(__version__, prog_name="memes")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """memes: add, render, publish and mail memes."""
    app = App(config_path)
    ctx.obj = app
    ctx.call_on_close(app.close)


# --- add / import ----------------------------------------------------------------------------


def _print_problems(report: Any) -> None:
    """What add/import refused or warned about: one line each on stderr."""
    for name, reason in report.rejected:
        say(f"memes: {name}: {reason}", err=True)
    for name, slug in report.already:
        say(f"memes: {name}: already added as {slug}", err=True)
    for warning in report.warnings:
        say(f"memes: warning: {warning}", err=True)


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--caption", required=True, help="What the meme says, in words.")
@click.option("--title", default="", help="Title (the slug comes from it, else the caption).")
@click.option("--category", default=None, help="One of config `categories` (default: the first).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several.")
@click.option("--alt", default=None, help="Alt text (default: the caption and overlay text).")
@click.option("--credit", default="", help="Credit line (photographer, source).")
@click.option("--top", default="", help="Overlay text drawn at the top of the image.")
@click.option("--bottom", default="", help="Overlay text drawn at the bottom of the image.")
@click.option("--template", default=None, help="Make the meme from this template (no FILES).")
@click.option("--text", "texts", multiple=True,
              help="A box's text, one per box in order (classic layout: top, bottom).")
@click.option(
    "--publish-at",
    callback=parse_datetime_option,
    help="ISO 8601, in site.timezone unless it has an offset; default: now (due at once).",
)
@json_option("Print a JSON array of slugs.")
@pass_app
def add(app: App, files: tuple[Path, ...], caption: str, title: str, category: str | None,
        tags: tuple[str, ...], alt: str | None, credit: str, top: str, bottom: str,
        template: str | None, texts: tuple[str, ...], publish_at: Any,
        as_json: bool) -> None:  # fmt: skip
    """Add meme image FILES (or a --template) with a caption; prints one slug per meme."""
    from pipeline.ingest import (
        MemeFields,
        add_files,
        check_options,
        check_text_count,
        validate_fields,
    )

    if template is not None:
        if files:
            raise UsageError("--template: give no FILES (the template brings its image)")
        check_text_count(texts, app.library.template(template))
        files = (Path(),)  # add_files takes the template's image
    elif not files:
        raise UsageError("FILES: give at least one image file, or --template NAME")
    fields = check_options(MemeFields(
        caption=caption, title=title, category=category or "", tags=tags, alt=alt or "",
        credit=credit, publish_at=publish_at, top_text=top, bottom_text=bottom,
        template=template, texts=texts,
    ), app.config)  # fmt: skip
    fields = validate_fields(fields, app.config)  # the same words for every file: judged once
    with progress_bar(len(files), "Adding", not as_json) as step:
        report = add_files(app.library, app.config, [(f, fields) for f in files], progress=step)
    _print_problems(report)
    if as_json:
        emit_json([m.slug for m in report.added])
    else:
        for meme in report.added:
            say(meme.slug)
    if not report.ok:
        sys.exit(EXIT_FAILED)


@cli.command("import")
@click.argument("manifest", type=click.Path(path_type=Path))
@json_option("Print a JSON summary.")
@pass_app
def import_(app: App, manifest: Path, as_json: bool) -> None:
    """Add every meme listed in a CSV or YAML MANIFEST."""
    from pipeline.ingest import add_files, read_manifest

    items, bad_rows = read_manifest(manifest, app.config.site.zone)
    with progress_bar(len(items), "Importing", not as_json) as step:
        report = add_files(app.library, app.config, items, progress=step)
    report.rejected[:0] = bad_rows
    _print_problems(report)
    if as_json:
        emit_json(
            {
                "added": [m.slug for m in report.added],
                "rejected": [{"file": f, "reason": r} for f, r in report.rejected],
                "already": [{"file": f, "slug": s} for f, s in report.already],
                "warnings": report.warnings,
            }
        )
    else:
        for meme in report.added:
            say(meme.slug)
        click.echo(
            f"{len(report.added)} added, {len(report.rejected)} rejected, "
            f"{len(report.warnings)} warnings"
            + (f", {len(report.already)} already added" if report.already else ""),
            err=True,
        )
    if not report.ok:
        sys.exit(EXIT_FAILED)


# --- list / show / edit / remove -------------------------------------------------------------


@cli.command("list")
@click.option(
    "--status",
    type=click.Choice([*STATUSES, "all"]),
    default="all",
    show_default=True,
    help="Only the memes in this state (failed: those that could not be rendered, and why).",
)
@json_option()
@pass_app
def list_(app: App, status: str, as_json: bool) -> None:
    """List memes in the library."""
    memes = app.library.memes(status, renditions=False)  # neither output shows them
    if as_json:
        emit_json([m.as_dict() for m in memes])
        return
    zone = app.config.site.zone
    for meme in memes:
        when = local_text(meme.published_at or meme.publish_at, zone)
        failure = [f"render failed: {meme.failure}"] if meme.failure else []
        say(meme.slug, meme.status, when, meme.category, meme.title or meme.caption, *failure)


def _show_lines(meme: Meme, zone: tzinfo) -> list[str]:
    data = meme.as_dict()
    for column in MEME_COLUMNS:  # times as people read them, in the site's zone
        value = getattr(meme, column.name)
        if column.json and isinstance(value, datetime):
            data[column.json] = local_text(value, zone)
    lines = [f"{key}: {value}" for key, value in data.items() if value not in ("", [], None)]
    lines += [f"rendition {a.name}: {a.key} ({a.width}x{a.height}, {a.bytes} bytes)"
              for a in meme.renditions]  # fmt: skip
    return lines


@cli.command()
@click.argument("slug")
@json_option()
@pass_app
def show(app: App, slug: str, as_json: bool) -> None:
    """Show one meme's record."""
    meme = app.library.get(slug)
    if as_json:
        data = meme.as_dict()
        data["renditions"] = {a.name: {"key": a.key, "width": a.width, "height": a.height,
                                       "content_type": a.content_type, "bytes": a.bytes}
                              for a in meme.renditions}  # fmt: skip
        emit_json(data)
    else:
        for line in _show_lines(meme, app.config.site.zone):
            say(line)


@cli.command()
@click.argument("slug")
@click.option("--caption", help="What the meme says, in words.")
@click.option("--title", help="Title (the slug stays as it is).")
@click.option("--alt", help="Alt text ('' follows the caption and overlay text again).")
@click.option("--credit", help="Credit line (photographer, source).")
@click.option("--category", help="One of config `categories`.")
@click.option("--tag", "tags", multiple=True, help="Replaces the tags; repeat for several.")
@click.option("--top", help="Overlay text at the top ('' removes it).")
@click.option("--bottom", help="Overlay text at the bottom ('' removes it).")
@click.option("--text", "texts", multiple=True, metavar="N=TEXT",
              help="Box N's text ('N=' empties it); repeat for several boxes.")
@click.option(
    "--publish-at",
    callback=parse_datetime_option,
    help="ISO 8601, in site.timezone unless it has an offset (a meme not yet published).",
)
@json_option()
@pass_app
def edit(app: App, slug: str, caption: str | None, title: str | None, alt: str | None,
         credit: str | None, category: str | None, tags: tuple[str, ...], top: str | None,
         bottom: str | None, texts: tuple[str, ...], publish_at: Any,
         as_json: bool) -> None:  # fmt: skip
    """Change a meme's words; a published meme's edit reaches the index at the next publish."""
    from pipeline.ingest import check_edit

    given = (caption, title, alt, credit, category, top, bottom, publish_at)
    if not tags and not texts and all(value is None for value in given):
        raise UsageError("edit: nothing to change; give at least one option (memes edit --help)")
    numbered: dict[int, str] = {}
    for item in texts:
        number, sep, text = item.partition("=")
        if not sep or not number.strip().isdigit():
            raise UsageError(f"--text {item!r}: expected N=TEXT, N a box number from 1")
        numbered[int(number)] = text
    changes = check_edit(
        app.library, app.config, slug, caption=caption, title=title, alt=alt, credit=credit,
        category=category, tags=tags or None, top_text=top, bottom_text=bottom,
        publish_at=publish_at, box_texts=numbered or None,
    )  # fmt: skip
    meme = app.library.edit(slug, **changes)
    if as_json:
        emit_json(meme.as_dict())
    else:
        say(meme.slug)


# --- templates -------------------------------------------------------------------------------


@cli.group("template")
def template_group() -> None:
    """Meme templates: an image plus its ordered text boxes."""


@template_group.command("add")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Lower-case letters, digits and dashes.")
@click.option("--boxes", "boxes_file", type=click.Path(path_type=Path), default=None,
              help="YAML list of text boxes (default: the classic top and bottom boxes).")
@click.option("--licence", default="", help="The image's licence, shown by `template list`.")
@click.option("--credit", default="", help="Credit line for the image.")
@pass_app
def template_add(app: App, image: Path, name: str, boxes_file: Path | None, licence: str,
                 credit: str) -> None:  # fmt: skip
    """Add IMAGE as template NAME (its image is stored in the library)."""
    from pipeline.ingest import add_template
    from pipeline.meme_templates import check_name, read_boxes_file

    check_name(name)
    boxes = read_boxes_file(boxes_file) if boxes_file else None
    made = add_template(app.library, app.config, image, name, boxes, licence, credit)
    click.echo(made.name)


@template_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_app
def template_list(app: App, as_json: bool) -> None:
    """The templates: bundled starters, then this library's."""
    templates = app.library.templates()
    if as_json:
        emit_json([t.as_dict() for t in templates])
        return
    for t in templates:
        source = "bundled" if t.bundled else "library"
        boxes = f"{len(t.boxes)} box" + ("" if len(t.boxes) == 1 else "es")
        say(t.name, boxes, f"{t.width}x{t.height}", source, t.licence or "licence not given")


@template_group.command("show")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write a PNG of the template with its boxes outlined and numbered.")
@pass_app
def template_show(app: App, name: str, out: Path | None) -> None:
    """Show a template's boxes (and, with --out, a picture of them)."""
    from pipeline import meme_templates

    template = app.library.template(name)
    if out is not None:
        data = meme_templates.preview_png(app.library.template_path(template), template.boxes)
        write_atomic(out, data)
    click.echo(f"name: {shown(template.name)}\nsize: {template.width}x{template.height}")
    click.echo(f"licence: {shown(template.licence)}\ncredit: {shown(template.credit)}")
    for number, box in enumerate(meme_templates.boxes_to_data(template.boxes), start=1):
        click.echo(f"box {number}: " + ", ".join(f"{k}: {shown(v)}" for k, v in box.items()))
    if out is not None:
        click.echo(f"picture: {out}")


@template_group.command("remove")
@click.argument("name")
@click.option("--keep-copies", is_flag=True,
              help="The memes made from it keep their own copy of its boxes.")  # fmt: skip
@pass_app
def template_remove(app: App, name: str, keep_copies: bool) -> None:
    """Remove template NAME (refused while memes use it, unless --keep-copies)."""
    copied = app.library.remove_template(name, keep_copies=keep_copies)
    say(name)
    if copied:
        click.echo(f"{len(copied)} memes keep their own copy of its boxes", err=True)


# --- render / publish / remove / verify / gc ------------------------------------------------


@contextmanager
def stage_progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]] | None]:
    """Progress bars for the stages of a long run, one after the other, on a terminal only.
    Each bar is finished when its stage is (so the next starts on a line of its own) and at
    the latest when the run ends, however it ends."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with ExitStack() as bars:

        def make(label: str, total: int) -> Callable[[int], None]:
            stage = ExitStack()
            bars.push(stage)
            bar = stage.enter_context(click.progressbar(length=total, label=label,
                                                        file=sys.stderr))  # fmt: skip
            done = 0

            def step(n: int) -> None:
                nonlocal done
                done += n
                bar.update(n)
                if done >= total:
                    stage.close()

            return step

        yield make


@cli.command()
@click.argument("slugs", nargs=-1, required=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("renders"),
    show_default=True,
    help="Folder to write <slug>/<rendition>.<ext> into.",
)
@pass_app
def render(app: App, slugs: tuple[str, ...], out: Path) -> None:
    """Render memes to a folder to look at them before they are published."""
    from pipeline.publish import render_to_folder

    with progress_bar(len(slugs), "Rendering", True) as step:
        written, failures = render_to_folder(app.library, app.config, slugs, out, step)
    for path in written:
        say(path)
    for failure in failures:
        say(f"memes: {failure}", err=True)
    if failures:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option(
    "--limit", type=click.IntRange(min=1), help="At most N memes (default: publish.batch_size)."
)
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; change nothing.")
@click.option(
    "--wait",
    type=FiniteRange(max=86_400),
    default=0,
    show_default=True,
    help="Seconds to wait for another run's lock before giving up (exit 75).",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Take over storage another library owns (e.g. this one restored from a backup).",
)
@json_option("A JSON summary for cron.")
@pass_app
def publish(app: App, limit: int | None, dry_run: bool, wait: float, adopt: bool,
            as_json: bool) -> None:  # fmt: skip
    """Render, upload and index the due memes, then run the newsletter rule."""
    from pipeline.publish import publish as run_publish

    with stage_progress(not as_json) as stages:
        report = run_publish(app.library, app.config, limit=limit, dry_run=dry_run, wait=wait,
                             adopt=adopt, progress=stages)  # fmt: skip
    for slug, reason in report.failed:
        say(f"memes: {slug}: not published: {reason}", err=True)
    for slug, reason in report.not_updated:
        say(f"memes: {slug}: not rendered again: {reason}; its old renditions stay live "
            f"(`memes retry {slug}` once it is fixed)", err=True)  # fmt: skip
    _print_problems_of(report)
    if as_json:
        emit_json(report.as_dict())
    elif dry_run:
        for key, size in report.would_upload:
            say(key, size)
        click.echo(f"would publish {len(report.published)} memes, upload "
                   f"{len(report.would_upload)} objects "
                   f"({sum(s for _, s in report.would_upload)} bytes)", err=True)  # fmt: skip
    else:
        for slug in report.published:
            say(slug)
        click.echo(f"published {len(report.published)}, uploaded {len(report.uploaded)} objects "
                   f"({report.uploaded_bytes} bytes), skipped {report.skipped}, "
                   f"{report.seconds:.1f}s", err=True)  # fmt: skip
    sys.exit(report.exit_code)


@cli.command()
@click.argument("slug")
@click.option("--purge", is_flag=True, help="Also delete the original from the library.")
@pass_app
def remove(app: App, slug: str, purge: bool) -> None:
    """Take a meme out of the queue, or down from the gallery (index first, then objects)."""
    from pipeline.publish import remove as run_remove

    meme = run_remove(app.library, app.config, slug, purge=purge)
    say(meme.slug, meme.status)


@cli.command()
@click.argument("slug")
@pass_app
def restore(app: App, slug: str) -> None:
    """Bring back a removed meme (not purged): it returns to its old place at the next publish."""
    meme = app.library.restore(slug)
    say(meme.slug, meme.status)


@cli.command()
@click.argument("slug")
@pass_app
def retry(app: App, slug: str) -> None:
    """Queue a meme that failed to render again (after a config change)."""
    meme = app.library.retry(slug)
    say(meme.slug, meme.status)


@cli.command()
@click.option("--repair", is_flag=True, help="Upload again what is missing or wrong.")
@json_option()
@pass_app
def verify(app: App, repair: bool, as_json: bool) -> None:
    """Check that every object the published index names is in storage, as recorded."""
    from pipeline.publish import verify as run_verify

    report = run_verify(app.library, app.config, repair=repair)
    if as_json:
        emit_json(report.as_dict())
    else:
        for key, problem in report.problems:
            fixed = " (repaired)" if key in report.repaired else ""
            say(f"{key}: {problem}{fixed}")
        click.echo(f"checked {report.checked} objects, {len(report.problems)} problems, "
                   f"{len(report.repaired)} repaired", err=True)  # fmt: skip
    if not report.ok:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option(
    "--grace-days",
    type=FiniteRange(max=36_500),
    default=None,
    help="Override storage.gc_grace_days.",
)
@json_option()
@pass_app
def gc(app: App, grace_days: float | None, as_json: bool) -> None:
    """Delete objects no index has referenced for the grace period."""
    from pipeline.publish import gc as run_gc

    report = run_gc(app.library, app.config, grace_days=grace_days)
    if as_json:
        emit_json(report.as_dict())
    else:
        say(report.summary())


# --- newsletter ------------------------------------------------------------------------------


@cli.group("newsletter")
def newsletter_group() -> None:
    """The memes newsletter: an edition after every `newsletter.every` published memes."""


MAX_TEXT_FILE_BYTES = 1_048_576  # an edition's words; Gmail clips a message at 100 KB anyway


def _read_text_file(path: Path | None, what: str) -> str | None:
    """The text of a --body or --extra file: read capped (never a device), UTF-8."""
    if path is None:
        return None
    try:
        return read_text_capped(path, MAX_TEXT_FILE_BYTES)
    except Unreadable as exc:
        raise UsageError(f"{path}: {what} file {exc}") from None


@newsletter_group.command("send")
@click.option("--resume", is_flag=True, help="Send again the editions in doubt.")
@click.option("--special", is_flag=True, help="A special edition, sent at once.")
@click.option("--subject", help="Subject of a special edition.")
@click.option(
    "--body",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plain-text body file of a special edition.",
)
@click.option("--slug", "slugs", multiple=True, help="A meme to feature in a special edition.")
@click.option(
    "--extra",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A plain-text file: an extra block for this edition.",
)
@json_option()
@pass_app
def newsletter_send(app: App, resume: bool, special: bool, subject: str | None,
                    body: Path | None, slugs: tuple[str, ...], extra: Path | None,
                    as_json: bool) -> None:  # fmt: skip
    """Send the due edition (if any), a special edition, or resume one in doubt."""
    from pipeline.publish import send_newsletter

    sent, report = send_newsletter(
        app.library, app.config, special=special, resume=resume, subject=subject,
        body=_read_text_file(body, "--body"), slugs=slugs, extra=_read_text_file(extra, "--extra"),
    )  # fmt: skip
    _print_problems_of(report)
    if as_json:
        emit_json(
            {"sent": [{"kind": e.kind, "number": e.number, "subject": e.subject} for e in sent],
             "warnings": report.warnings, "errors": report.errors}
        )  # fmt: skip
    else:
        for edition in sent:
            say(f"{edition.kind} #{edition.number}: {edition.subject}")
        if not sent and not report.errors and report.newsletter is not None:
            click.echo(f"no edition due: {report.newsletter['pending']} memes since the last "
                       f"edition, {report.newsletter['due_in']} more to go", err=True)  # fmt: skip
    sys.exit(report.exit_code)


def _print_problems_of(report: Any) -> None:
    """A run's warnings (it still did its job) and errors (exit 1), one line each."""
    for warning in report.warnings:
        say(f"memes: warning: {warning}", err=True)
    for error in report.errors:
        say(f"memes: {error}", err=True)


@newsletter_group.command("confirm")
@click.argument("kind", type=click.Choice(["regular", "special"]))
@click.argument("number", type=click.IntRange(min=1))
@pass_app
def newsletter_confirm(app: App, kind: str, number: int) -> None:
    """Record an edition in doubt as delivered (it did arrive), sending nothing."""
    from pipeline.publish import confirm_edition

    edition, report = confirm_edition(app.library, app.config, kind, number)
    say(f"{edition.kind} #{edition.number}: {edition.status}")
    _print_problems_of(report)
    sys.exit(report.exit_code)


@newsletter_group.command("status")
@json_option()
@pass_app
def newsletter_status(app: App, as_json: bool) -> None:
    """Memes since the last edition, how many more are due, editions in doubt."""
    from pipeline import newsletter

    status = newsletter.status(app.library, app.config)
    if as_json:
        emit_json(status)
        if status["in_doubt"]:
            say(f"memes: {status['in_doubt_action']}", err=True)
            sys.exit(EXIT_FAILED)
        return

    def edition_line(e: dict[str, Any] | None) -> str:
        if e is None:
            return "none"
        return f"#{e['number']} {e['subject']!r} ({e['status']}, {e['sent_at'] or e['created_at']})"

    click.echo(f"memes since the last edition: {status['pending']} (an edition every "
               f"{status['every']}; {status['due_in']} more to go)")  # fmt: skip
    say(f"next edition: #{status['next_number']}")
    say(f"last edition: {edition_line(status['last'])}")
    say(f"last special: {edition_line(status['last_special'])}")
    say(f"delivery: {status['delivery']}")
    if status["in_doubt"]:
        say(f"memes: {status['in_doubt_action']}", err=True)
        sys.exit(EXIT_FAILED)


@newsletter_group.command("preview")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML here (default: stdout).",
)
@click.option("--extra", type=click.Path(dir_okay=False, path_type=Path),
              help="A plain-text file: an extra block for this edition.")
@pass_app
def newsletter_preview(app: App, out: Path | None, extra: Path | None) -> None:
    """Render the next edition without sending or recording anything."""
    from pipeline import newsletter

    html = newsletter.preview(app.library, app.config, extra=_read_text_file(extra, "--extra"))
    if html is None:
        click.echo("nothing pending: no meme published since the last edition", err=True)
        return
    if out is None:
        click.echo(html)
    else:
        try:
            write_atomic(out, html.encode("utf-8"), sync=False)
        except OSError as exc:
            raise MemesError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
        say(out)



# --- studio: `memes serve` and its accounts --------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free one).")
@pass_app
def serve(app: App, host: str, port: int) -> None:
    """Run the studio (the desk's web app) under waitress until Ctrl-C or SIGTERM."""
    from pipeline.studio.server import serve as run_studio

    run_studio(app.config, host, port)


@cli.group("user")
def user_group() -> None:
    """Studio accounts (editors and admins)."""


def _read_password(from_stdin: bool) -> str:
    from pipeline.studio.accounts import MAX_PASSWORD, MIN_PASSWORD

    if from_stdin:  # as bytes: a script's locale may not be UTF-8 (surrogate escapes)
        line = sys.stdin.buffer.readline(4 * MAX_PASSWORD + 2)  # UTF-8: 4 bytes a character
        if len(line) > 4 * MAX_PASSWORD + 1 and not line.endswith(b"\n"):
            raise UsageError(f"password: at most {MAX_PASSWORD} characters")
        try:
            return line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError("password: not UTF-8 text") from None
    if not sys.stdin.isatty():  # cron, a pipe: nobody to ask
        raise UsageError("password: no terminal to ask it on; give it on stdin with "
                         "--password-stdin")  # fmt: skip
    password: str = click.prompt(f"Password ({MIN_PASSWORD}+ characters)", hide_input=True,
                                 confirmation_prompt=True, err=True)  # fmt: skip
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # a terminal that is not UTF-8
        raise UsageError("password: not UTF-8 text") from None
    return password


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["editor", "admin"]), default="editor", show_default=True,
              help="Editors make, edit and queue memes; admins also publish and take them down.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@pass_app
def user_add(app: App, name: str, role: str, password_stdin: bool) -> None:
    """Add a studio account; the password is prompted for (never an argument)."""
    from pipeline.studio import accounts

    accounts.check_name(name)
    user = accounts.add_user(app.library, name, _read_password(password_stdin), role)
    say(user.name, user.role)


@user_group.command("list")
@pass_app
def user_list(app: App) -> None:
    """The studio accounts."""
    for user in app.library.users():
        say(user.name, user.role, f"{user.created_at:%Y-%m-%d}")


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first line.")
@pass_app
def user_passwd(app: App, name: str, password_stdin: bool) -> None:
    """Set a new password for a studio account."""
    from pipeline.studio import accounts

    if app.library.user(name) is None:
        raise UsageError(f"user '{name}': no such user")
    accounts.set_password(app.library, name, _read_password(password_stdin))
    say(name)


@user_group.command("remove")
@click.argument("name")
@pass_app
def user_remove(app: App, name: str) -> None:
    """Remove a studio account (its sessions end at their next request)."""
    app.library.remove_user(name)
    say(name)


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli(prog_name="memes")


if __name__ == "__main__":
    main()
