"""HEIC/HEIF photos from phones: importing this module teaches Pillow to open them, once for
the process, for every module that reads images (ingest checks them, imaging renders them)."""

import pillow_heif

pillow_heif.register_heif_opener()
