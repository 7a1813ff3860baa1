"""The Flask app factory: sessions, CSRF, sign-in gate, security headers, one log line per
request, and the library opened per request (a SQLite connection belongs to one thread)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, Response, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from pipeline.config import Config
from pipeline.library import Library

log = logging.getLogger("memes.studio")

FORM_OVERHEAD = 256 * 1024  # multipart boundaries and the text fields beside one upload
PUBLIC_ENDPOINTS = {"auth.login", "static"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

csrf = CSRFProtect()


class StudioSessions(SecureCookieSessionInterface):
    """The session cookie is Secure when configured so, or when the request came over https
    (which, behind a proxy, the app only believes with studio.trust_proxy: see ProxyFix)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def studio_config() -> Config:
    from flask import current_app

    return current_app.extensions["memes_config"]


def library() -> Library:
    """This request's library (opened on first use, closed when the request ends)."""
    if "library" not in g:
        g.library = Library(studio_config().library)
    return g.library


def create_app(config: Config) -> Flask:
    app = Flask(__name__)
    with Library(config.library) as lib:
        key = lib.session_key()
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="memes_studio",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.studio.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=config.limits.max_bytes + FORM_OVERHEAD,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which expires on its own
        WTF_CSRF_SSL_STRICT=False,  # SameSite=Lax and the token do the work; see README
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["memes_config"] = config
    app.session_interface = StudioSessions()
    if config.studio.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    csrf.init_app(app)

    from pipeline.studio import auth, desk, filters, templates_desk

    app.register_blueprint(auth.blueprint)
    app.register_blueprint(desk.blueprint)
    app.register_blueprint(templates_desk.blueprint)
    filters.install(app, config)

    app.before_request(_load_user)
    app.after_request(_headers)
    app.teardown_request(_close_library)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _load_user() -> Any:
    name = session.get("user")
    g.user = library().user(name) if name else None
    if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        session.pop("user", None)
        back = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("auth.login", next=back))
    return None


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = g.get("csp", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    user = g.get("user")
    log.info('%s %s "%s %s" %s', request.remote_addr, user.name if user else "-",
             request.method, request.path, response.status_code)  # fmt: skip
    return response


def _close_library(_exc: BaseException | None) -> None:
    lib = g.pop("library", None)
    if lib is not None:
        lib.close()


def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return render_template("error.html", code=400, message=f"Form expired or forged: "
                           f"{error.description} Reload the page and try again."), 400  # fmt: skip


def _http_error(error: HTTPException) -> Any:
    if error.code is None or error.code < 400:
        return error
    return render_template("error.html", code=error.code, message=error.description), error.code
