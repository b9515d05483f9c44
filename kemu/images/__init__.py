"""kemu.images: build the images kemu needs (pause, tools, bootcamp, kemu) offline.

This machine reaches no container registry, so every image is built on the local Docker
engine from sources in the checkout's images/ directory, on a Debian base made with
debootstrap. `kemu images build` is the command; `kemu.images.build.build_images()` is the same for
tests. Nothing is imported here: the docker SDK comes with kemu.images.build, and a
process that only parses kemu's command line should not carry it.
"""
