"""Real image files for tests, made with Pillow in tmp_path (importable from any test)."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw


def noise_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A photo-like image: smooth gradients plus shapes, distinct per seed."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = (
            x0 + rng.randrange(1, max(2, width // 2)),
            y0 + rng.randrange(1, max(2, height // 2)),
        )
        colour = tuple(rng.randrange(256) for _ in range(len(mode)))
        draw.ellipse((x0, y0, x1, y1), fill=colour if len(colour) > 1 else colour[0])
    return image


def save(image: Image.Image, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


def jpeg(path: Path, width: int = 640, height: int = 480, seed: int = 0, **params) -> Path:
    return save(noise_image(width, height, seed), path, format="JPEG", quality=90, **params)


def png(path: Path, width: int = 640, height: int = 480, seed: int = 0) -> Path:
    return save(noise_image(width, height, seed), path, format="PNG")


def animated_gif(path: Path, frames: int = 4, size: tuple[int, int] = (120, 90),
                 duration: int = 80) -> Path:  # fmt: skip
    images = [noise_image(*size, seed=i).convert("P") for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def jpeg_bytes(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    out = io.BytesIO()
    noise_image(width, height, seed).save(out, format="JPEG", quality=quality)
    return out.getvalue()
