"""The `memes` command: parse arguments, call one library function, print text or --json.

Errors from library code (MemesError) become one line on stderr and the error's exit code;
no traceback ever reaches staff or cron.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from pipeline import __version__
from pipeline import config as config_module
from pipeline.config import Config
from pipeline.errors import EXIT_FAILED, MemesError, UsageError
from pipeline.library import STATUSES, Library, Meme

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


class MemesGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemesError as exc:
            click.echo(f"memes: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("memes: interrupted", err=True)
            ctx.exit(130)


pass_app = click.make_pass_decorator(App)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr); silent for cron, pipes and --json."""
    if not enabled or total <= 1 or not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def parse_datetime_option(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None:
        return None
    from pipeline.ingest import parse_publish_at

    try:
        return parse_publish_at(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[-1], param=param) from None


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


def _print_add_report(report: Any, as_json: bool) -> None:
    for name, reason in report.rejected:
        click.echo(f"memes: {name}: {reason}", err=True)
    for warning in report.warnings:
        click.echo(f"memes: warning: {warning}", err=True)
    if as_json:
        emit_json([m.slug for m in report.added])
    else:
        for meme in report.added:
            click.echo(meme.slug)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--caption", required=True, help="What the meme says, in words (required).")
@click.option("--title", default="", help="Title (the slug comes from it, else the caption).")
@click.option("--category", default=None, help="One of config `categories` (default: the first).")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several.")
@click.option("--alt", default=None, help="Alt text (default: the caption and overlay text).")
@click.option("--credit", default="", help="Credit line (photographer, source).")
@click.option("--top", default="", help="Overlay text drawn at the top of the image.")
@click.option("--bottom", default="", help="Overlay text drawn at the bottom of the image.")
@click.option(
    "--publish-at", callback=parse_datetime_option, help="ISO 8601; default: now (due at once)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of slugs.")
@pass_app
def add(app: App, files: tuple[Path, ...], caption: str, title: str, category: str | None,
        tags: tuple[str, ...], alt: str | None, credit: str, top: str, bottom: str,
        publish_at: Any, as_json: bool) -> None:  # fmt: skip
    """Add meme image FILES with a caption; prints one slug per added meme."""
    from pipeline.ingest import MemeFields, add_files

    if not caption.strip():
        raise UsageError("--caption: must not be empty")
    fields = MemeFields(
        caption=caption, title=title, category=category, tags=tags, alt=alt, credit=credit,
        publish_at=publish_at, top_text=top, bottom_text=bottom,
    )  # fmt: skip
    with progress_bar(len(files), "Adding", not as_json) as step:
        report = add_files(app.library, app.config, [(f, fields) for f in files], progress=step)
    _print_add_report(report, as_json)
    if not report.ok:
        sys.exit(EXIT_FAILED)


@cli.command("import")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@pass_app
def import_(app: App, manifest: Path, as_json: bool) -> None:
    """Add every meme listed in a CSV or YAML MANIFEST."""
    from pipeline.ingest import add_files, read_manifest

    rows = read_manifest(manifest)
    items = [row for row in rows if isinstance(row[0], Path)]
    bad_rows = [row for row in rows if not isinstance(row[0], Path)]
    with progress_bar(len(items), "Importing", not as_json) as step:
        report = add_files(app.library, app.config, items, progress=step)  # type: ignore[arg-type]
    report.rejected[:0] = [(str(label), str(reason)) for label, reason in bad_rows]
    for name, reason in report.rejected:
        click.echo(f"memes: {name}: {reason}", err=True)
    for warning in report.warnings:
        click.echo(f"memes: warning: {warning}", err=True)
    if as_json:
        emit_json(
            {
                "added": [m.slug for m in report.added],
                "rejected": [{"file": f, "reason": r} for f, r in report.rejected],
                "warnings": report.warnings,
            }
        )
    else:
        for meme in report.added:
            click.echo(meme.slug)
        click.echo(
            f"{len(report.added)} added, {len(report.rejected)} rejected, "
            f"{len(report.warnings)} warnings",
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
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def list_(app: App, status: str, as_json: bool) -> None:
    """List memes in the library."""
    memes = app.library.list(status)
    if as_json:
        emit_json([m.as_dict() for m in memes])
        return
    for meme in memes:
        when = meme.published_at or meme.publish_at
        click.echo(f"{meme.slug}\t{meme.status}\t{when:%Y-%m-%d %H:%M}\t{meme.category}\t"
                   f"{meme.title or meme.caption}")  # fmt: skip


def _show_text(meme: Meme) -> str:
    data = meme.as_dict()
    lines = [f"{key}: {value}" for key, value in data.items() if value not in ("", [], None)]
    lines += [f"rendition {a.name}: {a.key} ({a.width}x{a.height}, {a.bytes} bytes)"
              for a in meme.renditions]  # fmt: skip
    return "\n".join(lines)


@cli.command()
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
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
        click.echo(_show_text(meme))


@cli.command()
@click.argument("slug")
@click.option("--caption")
@click.option("--title")
@click.option("--alt")
@click.option("--credit")
@click.option("--category")
@click.option("--tag", "tags", multiple=True, help="Replaces the tags; repeat for several.")
@click.option("--top", help="Overlay text at the top ('' removes it).")
@click.option("--bottom", help="Overlay text at the bottom ('' removes it).")
@click.option("--publish-at", callback=parse_datetime_option)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def edit(app: App, slug: str, caption: str | None, title: str | None, alt: str | None,
         credit: str | None, category: str | None, tags: tuple[str, ...], top: str | None,
         bottom: str | None, publish_at: Any, as_json: bool) -> None:  # fmt: skip
    """Change a meme's words; a published meme's edit reaches the index at the next publish."""
    from pipeline.ingest import check_edit

    changes = check_edit(
        app.library, app.config, slug, caption=caption, title=title, alt=alt, credit=credit,
        category=category, tags=tags or None, top_text=top, bottom_text=bottom,
        publish_at=publish_at,
    )  # fmt: skip
    meme = app.library.edit(slug, **changes)
    if as_json:
        emit_json(meme.as_dict())
    else:
        click.echo(meme.slug)


def main() -> None:
    cli(prog_name="memes")


if __name__ == "__main__":
    main()
