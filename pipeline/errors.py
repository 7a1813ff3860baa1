"""The few exceptions library code raises; cli.py turns them into one-line messages.

Library code never prints or calls sys.exit: it raises one of these with a message that
names the thing and the reason, and the exit code the command should end with.
"""

from __future__ import annotations

# Exit codes documented for cron (README "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another publish run holds the lock; try again later


class MemesError(Exception):
    """Base class: a failure the user can act on, reported as one line."""

    exit_code = EXIT_FAILED


class ConfigError(MemesError):
    """config.yaml is missing, unreadable or has a bad key; the message names file + key path."""

    exit_code = EXIT_USAGE


class UsageError(MemesError):
    """A command was called with arguments that cannot work (unknown slug, bad option value)."""

    exit_code = EXIT_USAGE


class IngestError(MemesError):
    """A file was rejected at add/import time (not an image, too big, duplicate, ...)."""


class NotFoundError(MemesError):
    """A slug or object that was asked for does not exist."""

    exit_code = EXIT_USAGE


class RenderError(MemesError):
    """A meme could not be rendered (corrupt original, watermark would not show, ...)."""


class StorageError(MemesError):
    """Storage unreachable, refusing credentials or failing a request; names endpoint + cause."""


class OwnershipError(MemesError):
    """Storage belongs to another library (or holds objects no manifest accounts for)."""

    exit_code = EXIT_USAGE


class CatalogMissingError(MemesError):
    """catalog.sqlite is missing or empty beside stored originals: restore it, never guess."""

    exit_code = EXIT_USAGE


class LockedError(MemesError):
    """Another run holds the publish lock."""

    exit_code = EXIT_LOCKED


class DeliveryError(MemesError):
    """The newsletter could not be handed to the mail server (or written to the outbox)."""
