"""Studio accounts: argon2id password hashes, names, roles and login throttling.

The catalog keeps the records (library.py writes it); this module decides what a good name
and password are, hashes and checks passwords, and counts failed logins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipeline.errors import UsageError
from pipeline.library import ROLES, Library, User, utcnow

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 would hash a megabyte; nobody types one
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=15)

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Checked when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password anybody has")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"user name {name!r}: expected 1-40 lowercase letters, digits, '.', '_' or '-'"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"password: at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def add_user(library: Library, name: str, password: str, role: str = "editor") -> User:
    password_hash = _hasher.hash(check_password(password))
    return library.add_user(check_name(name), check_role(role), password_hash)


def set_password(library: Library, name: str, password: str) -> None:
    library.set_password(name, _hasher.hash(check_password(password)))


def authenticate(library: Library, name: str, password: str) -> User | None:
    """The user, if the name and password match; None otherwise (same cost either way)."""
    user = library.user(name) if NAME_PATTERN.fullmatch(name) else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        library.set_password(name, _hasher.hash(password))
    return user


@dataclass(frozen=True)
class Throttle:
    """Failed logins per user name and per client address in a sliding window."""

    failures: int = THROTTLE_FAILURES
    window: timedelta = THROTTLE_WINDOW

    @staticmethod
    def keys(name: str, address: str) -> tuple[str, str]:
        return (f"user:{name}", f"addr:{address}")

    def blocked(self, library: Library, name: str, address: str,
                now: datetime | None = None) -> bool:  # fmt: skip
        since = (now or utcnow()) - self.window
        return any(library.login_failures(k, since) >= self.failures
                   for k in self.keys(name, address))  # fmt: skip

    def failed(self, library: Library, name: str, address: str,
               now: datetime | None = None) -> None:  # fmt: skip
        now = now or utcnow()
        library.record_login_failure(self.keys(name, address), now, now - self.window)

    def succeeded(self, library: Library, name: str) -> None:
        library.clear_login_failures(self.keys(name, "")[0])
