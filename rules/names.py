"""Name normalization for matching bank lines against the registry (contract v1)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["normalize_name"]


@lru_cache(maxsize=1 << 16)
def _normalize(value: str) -> str:
    # NFD before casefold, NFC after: Unicode's canonical caseless matching. casefold()
    # can yield sequences that are not NFC (e.g. "ǰ" -> "j" + U+030C), and some combining
    # marks only fold when decomposed (U+0345), so NFC->casefold alone is not stable.
    s = unicodedata.normalize("NFC", unicodedata.normalize("NFD", value).casefold())
    # After NFC a decomposed "е" + U+0308 has become "ё", so replacing "ё" covers both
    # spellings. Loop because "ё" + a stray U+0308 would recompose into a new "ё".
    # Only ё/е are merged: Kazakh letters (ә ғ қ ң ө ұ ү һ і) stay distinct on purpose.
    while "ё" in s:
        s = unicodedata.normalize("NFC", s.replace("ё", "е"))
    # split() without arguments trims and collapses every Unicode whitespace run (NBSP, tabs...).
    return " ".join(s.split())


def normalize_name(value: str | None) -> str:
    """NFC, case-folded, trimmed, inner whitespace collapsed, ё = е. None -> ""."""
    if value is None:
        return ""
    return _normalize(value)
