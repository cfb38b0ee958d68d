"""An exact set of 12-digit numbers (IIN / BIN) that costs about 4 bytes per member.

A month's participants run to about 8 million IINs. A Python `set` of ints costs ~70 bytes per member
(a hash slot plus an int object); a flat sorted array would be 8 bytes per member but every insert
moves half of it. An IIN begins with the holder's birth date (a BIN with its registration date), so
bucketing by the first four digits (YYMM) spreads members over a few hundred buckets: the last eight
digits (< 10**8, so 4 bytes) go into a sorted `array('I')` per bucket, where `bisect` finds the place
and `insert` moves some tens of kilobytes at 8 million members in one partition. Finer buckets (by
day of birth) cost ~120 bytes of Python objects each, which at 12 partitions outweighed the members.

Values that are not 12 ASCII digits (a payer's BIN/IIN is echoed as the bank sent it) are kept as
strings in a side set: they are rare, and counting them exactly matters more than their cost.
"""
from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator

__all__ = ["IdSet"]

_SPLIT = 100_000_000  # low eight digits in the bucket, high four (YYMM) as its key
_HEADER = struct.Struct("<4sII")  # magic, bucket count, odd-value count
_BUCKET = struct.Struct("<II")  # bucket key, member count
_MAGIC = b"IDS1"


def _as_int(value: str) -> int | None:
    if len(value) == 12 and value.isascii() and value.isdigit():
        return int(value)
    return None


class IdSet:
    """Exact set of 12-digit ids; `add` answers whether the id was new."""

    __slots__ = ("_buckets", "_odd", "_len")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._buckets: dict[int, array] = {}
        self._odd: set[str] = set()
        self._len = 0
        for v in values:
            self.add(v)

    def add(self, value: str) -> bool:
        n = _as_int(value)
        if n is None:
            if value in self._odd:
                return False
            self._odd.add(value)
            self._len += 1
            return True
        high, low = divmod(n, _SPLIT)
        bucket = self._buckets.get(high)
        if bucket is None:
            self._buckets[high] = array("I", (low,))
            self._len += 1
            return True
        i = bisect_left(bucket, low)
        if i < len(bucket) and bucket[i] == low:
            return False
        bucket.insert(i, low)
        self._len += 1
        return True

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        n = _as_int(value)
        if n is None:
            return value in self._odd
        high, low = divmod(n, _SPLIT)
        bucket = self._buckets.get(high)
        if bucket is None:
            return False
        i = bisect_left(bucket, low)
        return i < len(bucket) and bucket[i] == low

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        for high in sorted(self._buckets):
            base = high * _SPLIT
            for low in self._buckets[high]:
                yield f"{base + low:012d}"
        yield from sorted(self._odd)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return self._odd == other._odd and self._buckets == other._buckets

    def __repr__(self) -> str:
        return f"IdSet(<{self._len} members>)"

    def update(self, values: Iterable[str]) -> int:
        """Add every value; the number that were new."""
        return sum(1 for v in values if self.add(v))

    def compact(self) -> None:
        """Drop the slack that `array.insert` over-allocates (call before a snapshot is kept)."""
        for high, bucket in self._buckets.items():
            self._buckets[high] = array("I", bucket)

    def to_bytes(self) -> bytes:
        """A snapshot for a changelog or a store; `from_bytes` restores it exactly."""
        parts = [_HEADER.pack(_MAGIC, len(self._buckets), len(self._odd))]
        for high in sorted(self._buckets):
            bucket = self._buckets[high]
            parts.append(_BUCKET.pack(high, len(bucket)))
            # Little-endian on the wire whatever the host, so a snapshot moves between machines.
            wire = array("I", bucket)
            if wire.itemsize != 4:  # pragma: no cover - 'I' is 4 bytes on every supported platform
                raise RuntimeError("array('I') is not 4 bytes here")
            if struct.pack("=I", 1) != struct.pack("<I", 1):  # pragma: no cover - big-endian host
                wire.byteswap()
            parts.append(wire.tobytes())
        for value in sorted(self._odd):
            raw = value.encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> IdSet:
        magic, n_buckets, n_odd = _HEADER.unpack_from(data, 0)
        if magic != _MAGIC:
            raise ValueError("not an IdSet snapshot")
        out = cls()
        pos = _HEADER.size
        total = 0
        for _ in range(n_buckets):
            high, count = _BUCKET.unpack_from(data, pos)
            pos += _BUCKET.size
            bucket = array("I")
            bucket.frombytes(data[pos:pos + 4 * count])
            if struct.pack("=I", 1) != struct.pack("<I", 1):  # pragma: no cover
                bucket.byteswap()
            pos += 4 * count
            out._buckets[high] = bucket
            total += count
        for _ in range(n_odd):
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4
            out._odd.add(data[pos:pos + size].decode("utf-8"))
            pos += size
        if pos != len(data):
            raise ValueError("trailing bytes after an IdSet snapshot")
        out._len = total + n_odd
        return out

    def nbytes(self) -> int:
        """Bytes held by the members and their buckets (containers included, not the interpreter)."""
        import sys

        size = sys.getsizeof(self._buckets) + sys.getsizeof(self._odd)
        size += sum(sys.getsizeof(b) for b in self._buckets.values())
        # Bucket keys are ints above the small-int cache: one object each.
        size += sum(sys.getsizeof(k) for k in self._buckets)
        size += sum(sys.getsizeof(v) for v in self._odd)
        return size
