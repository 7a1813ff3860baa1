"""`memes serve`: the studio under waitress (a production WSGI server), stopped cleanly by
Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import sys
from typing import Any

from waitress import create_server

from pipeline.config import Config
from pipeline.studio.app import create_app

THREADS = 8


def make_server(config: Config, host: str, port: int) -> Any:
    """The studio's waitress server, bound and not yet running. Waitress drops X-Forwarded-*
    headers unless told otherwise; with studio.trust_proxy they reach the app, whose ProxyFix
    reads them (and without it, nobody can forge them)."""
    return create_server(create_app(config), host=host, port=port, threads=THREADS, ident="memes",
                         clear_untrusted_proxy_headers=not config.studio.trust_proxy)  # fmt: skip


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
        server.run()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI turns it into Terminated)
        log.info("memes studio: stopped")
    finally:
        server.close()
