"""The desk's studio (`memes serve`): a signed-in web app over the same library, ingest,
imaging, publish and newsletter functions as the CLI. No logic of its own beyond forms,
sessions and permissions."""

from pipeline.studio.app import create_app

__all__ = ["create_app"]
