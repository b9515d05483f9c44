"""The one exception of kemu.images: the CLI prints it as a single line and exits 1."""

from __future__ import annotations


class ImageError(Exception):
    """An image could not be built, found or imported; the message says why and what to do."""
