"""64-bit flow cookies: who owns a flow, which feature made it, and which controller round.

    |- round 16 bits -|- feature 8 bits -|- reserved 8 bits -|- owner hash 32 bits -|
     63            48  47             40  39              32  31                    0

* round: bumped on every controller start (persisted by the app in br-int external_ids);
  the compiler always emits round 0 and the reconciler ORs its round in (``with_round``).
  Stale flows of an older round are removed with ``mask_round()``.
* feature: ``Feature`` below; ``ovs-ofctl dump-flows br-int cookie=0x0000020000000000/0x0000ff0000000000``
  shows one feature's flows.
* owner hash: the first 4 bytes of blake2b(owner), stable across processes and hosts (Python's
  ``hash()`` is salted and must never be used here). 32 bits can collide (~1 in 10^4 for 1 000
  owners of one feature), so a reconciler must delete an owner's flows by (cookie, match), using
  the cookie mask only as a pre-filter.
"""
from __future__ import annotations

import enum
import hashlib
from functools import lru_cache

ROUND_SHIFT = 48
FEATURE_SHIFT = 40
ROUND_BITS = 16
FEATURE_BITS = 8
OWNER_BITS = 32


class Feature(enum.IntEnum):
    BASE = 1
    NODE = 2
    VPC = 3
    SUBNET = 4
    POD = 5
    POLICY = 6
    SERVICE = 7


# Owner strings are "<kind>/<name...>" ("pod/ns/name", "subnet/web", "vpc/finance",
# "node/node-1") or exactly "base". The kind picks the feature.
OWNER_KIND_FEATURE: dict[str, Feature] = {
    "base": Feature.BASE,
    "node": Feature.NODE,
    "vpc": Feature.VPC,
    "subnet": Feature.SUBNET,
    "pod": Feature.POD,
    "policy": Feature.POLICY,
    "svc": Feature.SERVICE,
}


def owner_kind(owner: str) -> str:
    kind, sep, name = owner.partition("/")
    ok = owner == "base" or (kind in OWNER_KIND_FEATURE and kind != "base" and sep and name
                             and not name.endswith("/"))
    if not ok:
        raise ValueError(f"bad owner {owner!r}: expected 'base' or '<kind>/<name>' with kind in "
                         f"{sorted(OWNER_KIND_FEATURE)}")
    return kind


def feature_of_owner(owner: str) -> Feature:
    return OWNER_KIND_FEATURE[owner_kind(owner)]


@lru_cache(maxsize=1 << 18)
def owner_hash(owner: str) -> int:
    """Stable 32-bit hash of an owner string."""
    return int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=4).digest(), "big")


def cookie(round_: int, feature: Feature | int, owner: str) -> int:
    if not 0 <= round_ < (1 << ROUND_BITS):
        raise ValueError(f"round {round_} does not fit in {ROUND_BITS} bits")
    if not 0 < int(feature) < (1 << FEATURE_BITS):
        raise ValueError(f"feature {feature} does not fit in {FEATURE_BITS} bits")
    return (round_ << ROUND_SHIFT) | (int(feature) << FEATURE_SHIFT) | owner_hash(owner)


def mask_round() -> int:
    return ((1 << ROUND_BITS) - 1) << ROUND_SHIFT


def mask_feature() -> int:
    return ((1 << FEATURE_BITS) - 1) << FEATURE_SHIFT


def mask_owner() -> int:
    return (1 << OWNER_BITS) - 1


def round_of(c: int) -> int:
    return (c & mask_round()) >> ROUND_SHIFT


def feature_of(c: int) -> int:
    return (c & mask_feature()) >> FEATURE_SHIFT


def owner_hash_of(c: int) -> int:
    return c & mask_owner()


def with_round(c: int, round_: int) -> int:
    """The same cookie in another round (what the reconciler installs)."""
    if not 0 <= round_ < (1 << ROUND_BITS):
        raise ValueError(f"round {round_} does not fit in {ROUND_BITS} bits")
    return (c & ~mask_round() & ((1 << 64) - 1)) | (round_ << ROUND_SHIFT)
