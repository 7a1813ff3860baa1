"""`memes serve`: the studio under waitress (a production WSGI server), stopped cleanly by
Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import logging
import sys
from typing import Any

from waitress import create_server

from pipeline.config import Config
from pipeline.errors import MemesError, UsageError
from pipeline.studio.app import create_app

THREADS = 8


def make_server(config: Config, host: str, port: int) -> Any:
    """The studio's waitress server, bound and not yet running (an address it cannot listen
    on is one line: MemesError, UsageError for a --host that does not resolve). Waitress
    drops X-Forwarded-* headers unless told otherwise; with studio.trust_proxy they reach the
    app, whose ProxyFix reads them (and without it, nobody can forge them)."""
    app = create_app(config)
    try:
        trusted = config.studio.trust_proxy
        return create_server(app, host=host, port=port, threads=THREADS, ident="memes",
                             clear_untrusted_proxy_headers=not trusted)  # fmt: skip
    except ValueError:  # waitress: the host name does not resolve
        raise UsageError(f"--host {host}: not a name or address to listen on") from None
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise MemesError(f"serve: {where}: address already in use (another studio "
                             "running? stop it, or give another --port)") from None  # fmt: skip
        raise MemesError(f"serve: {where}: cannot listen: {exc.strerror or exc}") from None


def serve(config: Config, host: str, port: int) -> None:
    """Serve until interrupted; one log line per request on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log = logging.getLogger("memes.studio")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    server = make_server(config, host, port)
    bound = getattr(server, "effective_port", port)
    log.info("memes studio: http://%s:%s/ (Ctrl-C stops it)", host, bound)
    try:
        server.run()  # returns on Ctrl-C or SIGTERM (the CLI turns it into Terminated)
    except KeyboardInterrupt:  # one that lands outside waitress's loop
        pass
    finally:
        server.close()
        log.info("memes studio: stopped")
