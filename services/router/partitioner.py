"""Kafka's default key partitioner (murmur2) in Python: the reference for where a key lands.

The router's librdkafka producer hashes in C (``partitioner=murmur2_random``,
``shared/kafka_native.py``); this module stays for Python producers that want Java's placement
without aiokafka's slower byte-by-byte ``murmur2``, and as the oracle of
``tests/integration/router/test_native_partitioner.py`` (librdkafka, aiokafka and this agree).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import Final

__all__ = ["KeyPartitioner", "murmur2"]

_M: Final = 0x5BD1E995
_SEED: Final = 0x9747B28C
_MASK: Final = 0xFFFFFFFF
_words = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka's ``Utils.murmur2`` computes it (unsigned 32 bits)."""
    length = len(data)
    h = _SEED ^ length
    whole = length & ~3
    for (k,) in _words(data[:whole]):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


class KeyPartitioner:
    """Drop-in for aiokafka's ``DefaultPartitioner`` (``partitioner=`` of the producer)."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # unkeyed records: any available partition, as aiokafka does
            return random.choice(available or all_partitions)
        return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]
