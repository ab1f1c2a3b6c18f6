"""JSON from untrusted sources, parsed with limits: nesting depth and size, failing with the caller's error type.

The standard parser recurses once per nested array or object, so a document of 100,000 `[` raises
RecursionError instead of a parse error. Here the nesting is measured first, at C speed (string contents
dropped with `str.split`, brackets summed with `accumulate`), and only a document within the limits reaches
`json.loads`.
"""

from __future__ import annotations

import json
from array import array
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
MAX_BYTES = 16 * 2**20

#: Byte maps: an opening bracket is a step up (+1), a closing one a step down (-1), any other byte goes.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_BLOCK = 65536


def loads(data: bytes | str, error: type[Exception] = ValueError, *, what: str = "the document",
          max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse `data` (bytes must be UTF-8) as JSON; raise `error` naming `what` when it is not JSON, nests
    deeper than `max_depth` arrays and objects, or is longer than `max_bytes` (bytes, or characters of a str)."""
    if len(data) > max_bytes:
        raise error(f"{what} is larger than {max_bytes} bytes")
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{what} is not UTF-8 text") from None
    elif isinstance(data, str):
        text = data
    else:
        raise error(f"{what} is not text")
    if nests_deeper(text, max_depth):
        raise error(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise error(f"{what} is not JSON") from None


def nests_deeper(text: str, limit: int) -> bool:
    """True when JSON `text` nests arrays and objects (outside strings) deeper than `limit`, or closes more
    than it opened (not JSON, so never handed to the parser either)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    if '"' in text:  # drop string contents: escaped backslashes and quotes first, then every other span
        text = "".join(text.replace("\\\\", "").replace('\\"', "").split('"')[::2])
    steps = array("b", text.encode("utf-8", "surrogatepass").translate(_STEPS, _NOT_BRACKETS))
    level = 0
    for start in range(0, len(steps), _BLOCK):  # in blocks, so a hostile document stops at its first one
        levels = list(accumulate(steps[start:start + _BLOCK], initial=level))
        if max(levels) > limit or min(levels) < 0:
            return True
        level = levels[-1]
    return False
