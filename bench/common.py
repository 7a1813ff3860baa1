"""What several benchmarks share: the synthetic rendition set, how to name a published
key's kind, and running awscli against the bench's SeaweedFS."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

RENDITIONS = (  # name, width, height, type: the default config's seven, for synthetic records
    ("thumb", 320, 240, "image/webp"),
    ("phone", 640, 480, "image/jpeg"),
    ("large", 1200, 900, "image/webp"),
    ("social", 1080, 1080, "image/jpeg"),
    ("portrait", 1080, 1350, "image/jpeg"),
    ("landscape", 1200, 675, "image/jpeg"),
    ("og", 1200, 630, "image/jpeg"),
)


def aws_env(server: Any) -> dict[str, str]:
    """awscli pointed at the bench's SeaweedFS only: its keys, no profile, no metadata service."""
    return dict(
        os.environ,
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_DEFAULT_REGION=server.region,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


def aws_sync(
    aws: str, server: Any, tree: Path, bucket: str, *, debug: bool = False
) -> tuple[float, Counter[str], int]:
    """(seconds, API calls by operation, HTTP requests) of one `aws s3 sync` of `tree` into
    s3://bucket/site. Counts come from --debug output only when asked: the debug log itself
    slows awscli down, so timed runs go without it."""
    cmd = [aws, "s3", "sync", str(tree), f"s3://{bucket}/site", "--endpoint-url",
           server.endpoint, "--only-show-errors"] + (["--debug"] if debug else [])  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, env=aws_env(server), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-5:])
        raise SystemExit(f"aws s3 sync failed ({done.returncode}):\n{tail}")
    calls = Counter(re.findall(r"Making request for OperationModel\(name=(\w+)\)", done.stderr))
    return elapsed, calls, done.stderr.count("Sending http request:")


def document_kind(key: str) -> str:
    """What a published gallery key is, for counting what a publish changed."""
    if key.startswith("m/"):
        return "share pages" if key.endswith(".html") else "permalinks"
    if key in ("feed.xml", "feed.json"):
        return "feeds"
    if re.fullmatch(r"((categories|tags)/[^/]+/)?index\.json", key):
        return "heads"
    if re.fullmatch(r"((categories|tags)/[^/]+/)?pages/\d+\.json", key):
        return "pages"
    return "other"
