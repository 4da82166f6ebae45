"""Untrusted text (model, layer and label names, metadata, file contents quoted in errors) made safe to show.

One home for the rules every output uses:

- :func:`clean`: terminal escape sequences (ANSI CSI such as colours and cursor moves, OSC such as window titles
  and hyperlinks) are removed whole, other control characters (ESC, BEL, NUL, DEL, C1) become a space, and the
  bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) that make displayed text read
  backwards ("Trojan Source") are removed. Newlines and tabs are kept only when asked (HTML, multi-line CSS).
- :func:`for_terminal`: :func:`clean` on one line, then rich markup escaped (``[/bold]`` prints as written).
- :func:`csv_cell`: OWASP's CSV-injection rule: a text cell starting with ``=``, ``+``, ``-`` or ``@`` (after
  cleaning, which turns tabs and carriage returns into spaces) gets a leading ``'`` so spreadsheets show it as
  text instead of running it as a formula.
- :func:`clean_svg`: the characters XML 1.0 does not allow are removed from an SVG document, bidi controls too,
  and the result is checked to parse.
"""

from __future__ import annotations

import re
from typing import Any

from broden.errors import BrodenError

#: CSI (ESC [ ... final byte) and OSC (ESC ] ... BEL or ESC \), and the 8-bit CSI/OSC introducers
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: characters XML 1.0 forbids anywhere (C0 except tab, LF, CR; lone surrogates; U+FFFE, U+FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FORMULA_START = ("=", "+", "-", "@")  # OWASP also lists tab and CR: clean() has made them spaces


def clean(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` without terminal escape sequences, control characters or bidi controls (see the module doc)."""
    text = _BIDI.sub("", _ESCAPES.sub("", text))
    return (_CONTROL_KEEP_LINES if keep_newlines else _CONTROL).sub(" ", text)


def for_terminal(text: Any) -> str:
    """One line of untrusted text for a rich table or title: cleaned and with rich markup escaped."""
    from rich.markup import escape

    return escape(clean(str(text)))


def csv_cell(value: Any) -> Any:
    """A CSV cell value: cleaned text, quoted with ``'`` when a spreadsheet would read it as a formula."""
    if not isinstance(value, str):
        return value
    value = clean(value)
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def clean_svg(svg: str) -> str:
    """An SVG document without the characters XML forbids or bidi controls; raises when it still does not parse."""
    from xml.etree import ElementTree

    svg = _BIDI.sub("", _NOT_XML.sub("", svg))
    try:
        ElementTree.fromstring(svg)
    except ElementTree.ParseError as exc:
        raise BrodenError(f"chart SVG does not parse ({exc}); report this as a bug") from None
    return svg
