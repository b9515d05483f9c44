"""The pod-template-hash: a short, stable name for a pod template.

The Deployment controller names each ReplicaSet `<deployment>-<hash>` and labels its pods
`pod-template-hash=<hash>`, so the hash must be the same for the same template on every
run of every controller-manager (a restart must find, not duplicate, the ReplicaSet), and
differ when the template differs. As Kubernetes' `controller.ComputeHash` does, it is
FNV-1a (32 bit) over a canonical form of the template, mixed with the Deployment's
collisionCount when set (bumped to step past a name taken by another template), and
spelled in the alphabet of `rand.SafeEncodeString`, which has no vowels (no words) and no
look-alike characters. The canonical form is the template's JSON with sorted keys, which
does not depend on protobuf's wire encoding or map order; the decimal value is
zero-padded so every hash has ten characters.
"""

from __future__ import annotations

import json
import struct

from google.protobuf import json_format

from kemu.api.v1 import core_pb2

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each byte picks a character of the safe alphabet."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in text.encode())


def canonical(template: core_pb2.PodTemplateSpec) -> bytes:
    doc = json_format.MessageToDict(template, preserving_proto_field_name=True)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def compute_hash(template: core_pb2.PodTemplateSpec, collision_count: int | None = None
                 ) -> str:
    """Ten characters of the safe alphabet naming this template."""
    h = fnv32a(canonical(template))
    if collision_count is not None:
        h = fnv32a(struct.pack("<Q", collision_count & 0xFFFFFFFF), h)
    return safe_encode(f"{h:010d}")
