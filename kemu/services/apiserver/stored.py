"""The watch cache's current objects, kept in the store's serialized form.

A decoded object costs several times its stored bytes (upb gives every parsed message an
arena of its own: a 750-byte pod takes about 5 KB), and a watch cache holds every object of
its kind for as long as the apiserver runs. So it keeps each object's stored bytes and
revision, and decodes on read. Decoding a pod takes less time than copying a decoded one,
and every read gets a fresh object of its own, which the caller may change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kemu.api.v1 import api_pb2
from kemu.services.apiserver.registry import decode
from kemu.services.apiserver.storage import KeyValue

# An object's stored bytes and the store revision that wrote them.
Raw = tuple[bytes, int]


def decode_raw(key: str, raw: Raw, revision: int | None = None) -> api_pb2.Object:
    """The object as the apiserver serves it, its resourceVersion `revision` (default: the
    revision that wrote it; a deletion gives the object before it the delete's revision)."""
    value, written = raw
    return decode(KeyValue(key, value, written, written if revision is None else revision))


class StoredObjects(Mapping[str, api_pb2.Object]):
    """Store key -> object, held as bytes; reading decodes."""

    def __init__(self, raw: dict[str, Raw] | None = None) -> None:
        self.raw: dict[str, Raw] = {} if raw is None else raw

    def __getitem__(self, key: str) -> api_pb2.Object:
        return decode_raw(key, self.raw[key])

    def get(self, key: str, default: api_pb2.Object | None = None  # type: ignore[override]
            ) -> api_pb2.Object | None:
        raw = self.raw.get(key)
        return default if raw is None else decode_raw(key, raw)

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)
