"""Cold upload rate of Storage.put_many against rclone and `aws s3 sync`, on a SeaweedFS
started here.

    .venv/bin/python bench/upload.py [--aws /tmp/awsvenv/bin/aws] [--files 600] [--mb 60]

Generates a tree of mixed-size files (thumbnails, renditions, a few big GIF-sized ones),
then uploads it cold into fresh buckets with put_many, `rclone copy --transfers 16` and
`aws s3 sync`, alternating, and prints files/s for each, the ratios (targets: >= 1.1x rclone,
>= 1.5x aws s3 sync), the load average each ran under and the requests a no-change re-sync
makes. rclone is Debian's package (`apt-get install -y rclone`); without it the script says so
and measures the others. awscli pins its own botocore, so install it in a separate venv:

    python3 -m venv /tmp/awsvenv && /tmp/awsvenv/bin/pip install awscli

and pass --aws (or set AWS_CLI). Without it the script still measures put_many and says so.

It also times the alternative design, two worker processes each with its own client and
threads. On a 2-core machine that also runs SeaweedFS it loses to one process with threads:
the client spends ~1 CPU-second on 600 PUTs and the server about as much, so the cores are
shared with the server rather than idle, and starting the workers costs more than the GIL
does. That is why put_many uses threads only.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import aws_env, aws_sync  # noqa: E402
from seaweed import SeaweedServer, seaweed  # noqa: E402

from pipeline import config as config_mod  # noqa: E402
from pipeline.documents import Document  # noqa: E402
from pipeline.storage import open_storage  # noqa: E402


def server_cpu(server: SeaweedServer) -> float:
    """CPU seconds the weed process has used so far (utime + stime from /proc)."""
    try:
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_tree(root: Path, files: int, total_mb: float, seed: int = 7) -> list[Path]:
    """About ``files`` files summing to about ``total_mb`` MB: many small, some big."""
    rng = random.Random(seed)
    # Relative weights per file: 60% thumbnails, 30% renditions, 10% big animations.
    kinds = [("thumb", "webp", 1.0)] * 6 + [("large", "jpg", 8.0)] * 3 + [("anim", "gif", 40.0)]
    plan = [kinds[n % len(kinds)] for n in range(files)]
    unit = total_mb * 1024 * 1024 / sum(weight for *_, weight in plan)
    paths = []
    for n, (name, ext, weight) in enumerate(plan):
        size = max(1024, int(unit * weight * rng.uniform(0.5, 1.5)))
        path = root / "i" / f"meme-{n:04d}" / f"{name}.{n:08x}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def documents_for(root: Path, paths: list[Path]) -> list[Document]:
    return [
        Document(
            str(p.relative_to(root)),
            p.read_bytes(),
            mimetypes.guess_type(p.name)[0] or "application/octet-stream",
            immutable=True,
        )
        for p in paths
    ]


def storage_for(server: SeaweedServer, bucket: str, tmp: Path):
    raw = {"url": f"s3://{bucket}/site", "endpoint_url": server.endpoint}
    return open_storage(config_mod.parse({"storage": raw}, root=tmp).storage)


def run_put_many(
    server: SeaweedServer, docs: list[Document], tmp: Path
) -> tuple[float, float, float, int]:
    """(wall s, client CPU s, server CPU s, requests) for one cold sync."""
    storage = storage_for(server, server.new_bucket("pm"), tmp)
    started, cpu, weed = time.perf_counter(), time.process_time(), server_cpu(server)
    manifest = storage.load_manifest()
    report = storage.put_many(docs, manifest)
    storage.save_manifest(manifest)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(report.uploaded) == len(docs)
    return elapsed, cpu, server_cpu(server) - weed, storage.requests


def _put_half(config: config_mod.StorageConfig, docs: list[Document]) -> tuple[str, float]:
    storage = open_storage(config)
    manifest = storage.load_manifest()
    storage.put_many(docs, manifest)
    return manifest.to_json().decode(), time.process_time()  # the worker's CPU, imports too


def run_two_processes(
    server: SeaweedServer, docs: list[Document], tmp: Path
) -> tuple[float, float, float]:
    """The alternative design: 2 worker processes, each with its own client and threads.

    Wall time includes starting the workers (forkserver: forking a threaded process is
    unsafe); client CPU is the workers' CPU. Kept here as evidence for the choice of threads.
    """
    storage = storage_for(server, server.new_bucket("pp"), tmp)
    cfg = replace(storage.config, concurrency=max(1, storage.config.concurrency // 2))
    started, weed = time.perf_counter(), server_cpu(server)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        halves = list(pool.map(_put_half, [cfg, cfg], [docs[0::2], docs[1::2]]))
    elapsed = time.perf_counter() - started
    cpu = sum(worker_cpu for _, worker_cpu in halves)
    assert sum(len(json.loads(text)["objects"]) for text, _ in halves) == len(docs)
    return elapsed, cpu, server_cpu(server) - weed


def run_aws_sync(aws: str, server: SeaweedServer, tree: Path) -> tuple[float, float, float]:
    """(wall s, client CPU s, server CPU s) for one cold `aws s3 sync`."""
    bucket = server.new_bucket("aws")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    weed = server_cpu(server)
    elapsed = _aws_sync(aws, server, tree, bucket)[0]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return elapsed, cpu, server_cpu(server) - weed


def rclone_env(server: SeaweedServer, config: Path) -> dict[str, str]:
    """rclone pointed at the bench's SeaweedFS only: a remote named ``bench`` from the
    environment and an empty config file, so no user config is read."""
    # The AWS SDK inside rclone would take AWS_* settings (a CA bundle, say) as its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return dict(
        env,
        RCLONE_CONFIG=str(config),
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="SeaweedFS",
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=server.access_key,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=server.secret_key,
        RCLONE_CONFIG_BENCH_REGION=server.region,
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
    )


def run_rclone(
    rclone: str, server: SeaweedServer, tree: Path, tmp: Path
) -> tuple[float, float, float]:
    """(wall s, client CPU s, server CPU s) for one cold `rclone copy --transfers 16`."""
    bucket = server.new_bucket("rc")
    config = tmp / "rclone.conf"
    config.touch()
    cmd = [rclone, "copy", str(tree), f"bench:{bucket}/site", "--transfers", "16",
           "--s3-no-check-bucket"]  # fmt: skip
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    weed = server_cpu(server)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=rclone_env(server, config), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rclone copy failed ({done.returncode}): {done.stderr[-1000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return elapsed, cpu, server_cpu(server) - weed


def _aws_sync(
    aws: str, server: SeaweedServer, tree: Path, bucket: str, *, count: bool = False
) -> tuple[float, int]:
    """(seconds, HTTP requests) for one `aws s3 sync` (requests counted only when asked)."""
    elapsed, _calls, requests = aws_sync(aws, server, tree, bucket, debug=count)
    return elapsed, requests


def describe(name: str, runs: list[tuple[float, ...]], files: int, total: int) -> float:
    """Print the median run as files/s, MB/s, CPU split and load average; return its wall s."""
    wall, client, server, load = (statistics.median(column) for column in zip(*runs, strict=True))
    print(f"{name:18}{files / wall:7.1f} files/s {total / 1e6 / wall:6.1f} MB/s  "
          f"(median of {len(runs)}: {wall:.2f}s wall, client CPU {client:.2f}s = "
          f"{client / files * 1000:.2f} ms/file, SeaweedFS CPU {server:.2f}s; "
          f"load average {load:.1f})")  # fmt: skip
    return wall


def loaded(run: tuple[float, ...]) -> tuple[float, ...]:
    return (*run, os.getloadavg()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aws", default=os.environ.get("AWS_CLI") or "/tmp/awsvenv/bin/aws")
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--mb", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rclone = shutil.which("rclone")
    if not rclone:
        print("rclone not found: skipping it (Debian: apt-get install -y rclone)")
    aws = args.aws if Path(args.aws).exists() else shutil.which(args.aws)
    if not aws:
        print(f"aws CLI not found at {args.aws!r}: measuring put_many only. Install it with")
        print("  python3 -m venv /tmp/awsvenv && /tmp/awsvenv/bin/pip install awscli")

    tmp = Path(tempfile.mkdtemp(prefix="memes-bench-"))
    try:
        tree = tmp / "tree"
        paths = make_tree(tree, args.files, args.mb)
        docs = documents_for(tree, paths)
        total = sum(d.size for d in docs)
        print(f"tree: {len(docs)} files, {total / 1e6:.1f} MB, cores: {os.cpu_count()}")
        with seaweed() as server:
            os.environ.update(aws_env(server))
            ours: list[tuple[float, ...]] = []
            pooled: list[tuple[float, ...]] = []
            theirs: list[tuple[float, ...]] = []
            rcloned: list[tuple[float, ...]] = []
            cold_requests = 0
            for _ in range(args.rounds):  # alternate, so drift in the machine hits all
                *run, cold_requests = run_put_many(server, docs, tmp)
                ours.append(loaded(tuple(run)))
                if rclone:
                    rcloned.append(loaded(run_rclone(rclone, server, tree, tmp)))
                pooled.append(loaded(run_two_processes(server, docs, tmp)))
                if aws:
                    theirs.append(loaded(run_aws_sync(aws, server, tree)))

            ours_s = describe("put_many cold:", ours, len(docs), total)
            print(f"{'':18}{cold_requests} requests")
            if rcloned:
                rclone_s = describe("rclone copy cold:", rcloned, len(docs), total)
                ratios = sorted(r[0] / o[0] for r, o in zip(rcloned, ours, strict=True))
                print(f"ratio put_many / rclone: {rclone_s / ours_s:.2f}x (target >= 1.1x; "
                      f"per round {', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip
            describe("2 processes:", pooled, len(docs), total)
            if theirs:
                theirs_s = describe("aws s3 sync cold:", theirs, len(docs), total)
                # awscli's own start-up (imports, reading config), measured on an empty tree,
                # so the ratio can be judged with and without it.
                empty = tmp / "empty"
                empty.mkdir(exist_ok=True)
                startup = statistics.median(
                    _aws_sync(aws, server, empty, server.new_bucket("awsnil"))[0] for _ in range(3)
                )
                print(f"{'':18}of which awscli start-up ~{startup:.2f}s")
                print(f"ratio put_many / aws s3 sync: {theirs_s / ours_s:.2f}x (target >= 1.5x); "
                      f"without awscli start-up: {(theirs_s - startup) / ours_s:.2f}x")  # fmt: skip

            # No-change re-sync: a second host loading the manifest and finding nothing new.
            bucket = server.new_bucket("resync")
            first = storage_for(server, bucket, tmp)
            manifest = first.load_manifest()
            first.put_many(docs, manifest)
            first.save_manifest(manifest)
            second = storage_for(server, bucket, tmp)
            started = time.perf_counter()
            report = second.put_many(docs, second.load_manifest())
            elapsed = time.perf_counter() - started
            print(f"put_many no-change re-sync: {second.requests} request(s) "
                  f"{dict(second.request_counts)}, {len(report.skipped)} skipped, "
                  f"{elapsed * 1000:.0f} ms")  # fmt: skip
            if aws:
                aws_bucket = server.new_bucket("awsre")
                _aws_sync(aws, server, tree, aws_bucket)
                seconds, requests = _aws_sync(aws, server, tree, aws_bucket, count=True)
                print(f"aws s3 sync no-change re-sync: {requests} request(s), "
                      f"{seconds * 1000:.0f} ms")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
