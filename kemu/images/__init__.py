"""kemu.images: build the images kemu needs (pause, tools, bootcamp, kemu) offline.

This machine reaches no container registry, so every image is built on the local Docker
engine from sources in the checkout's images/ directory, on a Debian base made with
debootstrap. `kemu images build` is the command; `build_images()` is the same for tests.
"""

from kemu.images.build import DEFAULT_BASE, build_images
from kemu.images.errors import ImageError

__all__ = ["DEFAULT_BASE", "ImageError", "build_images"]
