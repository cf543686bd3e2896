"""Untrusted bytes made safe to print or log.

Whatever a server or another device sends (message data, BYE text, ids) may
hold terminal escape sequences, newlines that forge log lines, or bytes that
are not text.  :func:`escape` turns such bytes into one line of printable
text that shows them all: it cannot move the cursor, change colours, end the
line or be mistaken for something the program printed itself.
"""

from __future__ import annotations

from typing import List

__all__ = ["escape"]

_BACKSLASH = ord("\\")


def escape(data: bytes) -> str:
    """``data`` as printable text: UTF-8 characters that print as themselves
    (``str.isprintable``, which excludes control and formatting characters
    such as ESC, newline or U+202E) are kept; every other byte, and every
    byte that is not valid UTF-8, becomes ``\\xNN``; a backslash becomes
    ``\\\\``, so that the output is unambiguous.
    """
    text = data.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text  # the common case: plain text, one pass
    out: List[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            # A control or formatting character (its UTF-8 bytes), or a byte
            # that was not UTF-8 (a lone surrogate U+DC80..U+DCFF).
            raw = ch.encode("utf-8", "surrogateescape")
            out.extend("\\x%02x" % b for b in raw)
    return "".join(out)
