"""A real SMTP server (aiosmtpd) for the newsletter tests, run as its own process.

    python tests/smtp_server.py --port PORT --maildir DIR [--auth USER:PASSWORD [--auth-only M]]
        [--starttls CERT KEY]
        [--kill-pid-file FILE | --drop-after-data | --refuse-rcpt | --refuse-data |
         --never-greet]

Every accepted message is stored in the Maildir (with aiosmtpd's X-MailFrom / X-RcptTo
headers). The misbehaviours reproduce what the exactly-once contract is about:

--kill-pid-file FILE  after storing a message, SIGKILL the process whose pid is in FILE
                      (once; the file is removed) before answering: the client dies after
                      handing the message over and before it could record it.
--drop-after-data     after storing a message, close the connection without answering.
--refuse-rcpt         refuse every recipient with 550.
--refuse-data         take the whole message, then refuse it with 554 (a content filter).
--never-greet         accept connections and never say a word (a hung server); each accepted
                      connection is counted in DIR/connections (DIR is --maildir).
--auth USER:PASSWORD  offer AUTH (without TLS, it is a loopback test) and accept only these;
                      each attempt is logged to DIR/auth.log as "MECHANISM LOGIN ok|refused".
--auth-only MECH      offer only this AUTH mechanism (LOGIN or PLAIN; default: both).
--starttls CERT KEY   require STARTTLS (with this certificate) before anything else; AUTH is
                      then offered only over TLS.

Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import mailbox
import os
import signal
import socket
import ssl
import threading
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

MECHANISMS = ("LOGIN", "PLAIN")  # aiosmtpd's own AUTH mechanisms


class Handler:
    def __init__(self, args: argparse.Namespace):
        self.maildir = mailbox.Maildir(args.maildir)
        self.kill_pid_file = Path(args.kill_pid_file) if args.kill_pid_file else None
        self.drop = args.drop_after_data
        self.refuse = args.refuse_rcpt
        self.refuse_data = args.refuse_data

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.refuse_data:
            return "554 5.7.1 message refused by content filter"
        message = message_from_bytes(envelope.original_content, policy=compat32)
        message["X-MailFrom"] = envelope.mail_from
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        self.maildir.add(message)
        if self.kill_pid_file is not None and self.kill_pid_file.exists():
            pid = int(self.kill_pid_file.read_text())
            self.kill_pid_file.unlink()
            os.kill(pid, signal.SIGKILL)
        if self.drop:
            server.transport.close()
        return "250 Message accepted for delivery"


def never_greet(port: int, maildir: Path) -> None:
    """Accept every connection, keep it open, send nothing, until SIGTERM."""
    maildir.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server(("127.0.0.1", port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listener.settimeout(0.1)
    held = []
    while not stop.is_set():
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        held.append(connection)
        (maildir / "connections").write_text(str(len(held)))
    for connection in held:
        connection.close()
    listener.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--auth")
    parser.add_argument("--auth-only", choices=MECHANISMS)
    parser.add_argument("--kill-pid-file")
    parser.add_argument("--drop-after-data", action="store_true")
    parser.add_argument("--refuse-rcpt", action="store_true")
    parser.add_argument("--refuse-data", action="store_true")
    parser.add_argument("--never-greet", action="store_true")
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    if args.never_greet:
        never_greet(args.port, Path(args.maildir))
        return

    kwargs: dict = {}
    if args.starttls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.starttls)
        kwargs = {"tls_context": context, "require_starttls": True}
    if args.auth:
        user, _, password = args.auth.partition(":")

        log = Path(args.maildir) / "auth.log"  # the Maildir exists once a client can log in

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode() == user and auth_data.password.decode() == password
            )
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
            with log.open("a", encoding="utf-8") as out:
                out.write(f"{mechanism} {login} {'ok' if ok else 'refused'}\n")
            return AuthResult(success=ok, handled=False)

        kwargs |= {"authenticator": authenticator, "auth_require_tls": bool(args.starttls)}
        if args.auth_only:
            kwargs["auth_exclude_mechanism"] = [m for m in MECHANISMS if m != args.auth_only]

    controller = Controller(Handler(args), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
