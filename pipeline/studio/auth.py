"""Sign in, sign out, and the role gate."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for

from pipeline.studio import accounts
from pipeline.studio.app import library

blueprint = Blueprint("auth", __name__)
throttle = accounts.Throttle()


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.user is None or g.user.role != "admin":
            abort(403, "This needs an admin account.")
        return view(*args, **kwargs)

    return wrapper


def _safe_next(target: str | None) -> str:
    """Only a path on this site; never another host (an open redirect)."""
    if not target:
        return url_for("desk.make")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("desk.make")
    return target


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    name = ""
    status = 200
    if request.method == "POST":
        name = request.form.get("username", "").strip().lower()
        password = request.form.get("password", "")
        address = request.remote_addr or "-"
        lib = library()
        if throttle.blocked(lib, name, address):
            error = "Too many failed sign-ins. Wait 15 minutes and try again."
            status = 429
        else:
            user = accounts.authenticate(lib, name, password)
            if user is None:
                throttle.failed(lib, name, address)
                error = "Wrong user name or password."
                status = 401
            else:
                throttle.succeeded(lib, name)
                session.clear()  # a fresh session (and CSRF token) for the signed-in user
                session.permanent = True
                session["user"] = user.name
                return redirect(_safe_next(request.args.get("next")), 303)
    return render_template("login.html", error=error, username=name), status


@blueprint.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"), 303)
