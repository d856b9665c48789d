"""One regex meaning in every engine: RE2 syntax with Unicode classes, for DuckDB and PostgreSQL.

A ``matches_regex`` pattern is RE2 syntax (DuckDB's engine, also for in-memory tables)
whose ``\\s``, ``\\d`` and ``\\w`` are Unicode classes, as in Python's ``re`` (and so
in Great Expectations) and Rust's ``regex``. RE2's own ``\\s``, ``\\d`` and ``\\w`` are
ASCII only, so ``\\s`` would not match ``"\\xa0"``. Before a pattern goes to DuckDB
those classes are spelled out with Unicode properties, which RE2 knows:

=========  ============================  ================================================
class      Rust / Python (Unicode)       sent to RE2
=========  ============================  ================================================
``\\s``     White_Space                   the 25 White_Space code points, listed
``\\d``     decimal digits (Nd)           ``\\p{Nd}``
``\\w``     Alphabetic, M, Nd, Pc, ZWJ    ``\\p{L}\\p{M}\\p{Nd}\\p{Pc}\\p{Nl}``, ZWNJ/ZWJ and the
                                         circled letters (the rest of Alphabetic)
``\\S``     not White_Space               ``[^...]`` of the above (not inside ``[...]``)
``\\D``     not Nd                        ``\\P{Nd}``
``\\W``     not word                      ``[^...]`` of the above (not inside ``[...]``)
=========  ============================  ================================================

PostgreSQL's ``\\s``, ``\\d``, ``\\w`` follow the database's locale (with ``C.UTF-8``:
``\\d`` ASCII only, ``\\s`` without U+00A0, ``\\w`` without combining marks), and it has
no ``\\p{..}``: there the same classes are spelled as bracket lists of code-point
ranges, built from Python's ``unicodedata`` (:func:`to_postgres`).

``\\S`` and ``\\W`` inside a bracket class (``[\\S@]``) have no spelling in either
engine and are refused with a message. Word boundaries ``\\b``/``\\B`` keep each
engine's meaning (ASCII in RE2): avoid them on non-ASCII text. Code points newer than
the Unicode version of the engine's tables may still differ.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping

from headrace.quality.quality_errors import ExpectationDefinitionError

_SPACE = (
    r"\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}"
    r"\x{202F}\x{205F}\x{3000}"
)
_WORD = (
    r"\p{L}\p{M}\p{Nd}\p{Pc}\p{Nl}\x{200C}\x{200D}\x{24B6}-\x{24E9}"
    r"\x{1F130}-\x{1F149}\x{1F150}-\x{1F169}\x{1F170}-\x{1F189}"
)
_DIGIT = r"\p{Nd}"
_WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_OTHER_ALPHABETIC_SO = (
    (0x24B6, 0x24E9),
    (0x1F130, 0x1F149),
    (0x1F150, 0x1F169),
    (0x1F170, 0x1F189),
)

# Outside brackets: the replacement of each class; inside: what goes between the brackets.
_OUTSIDE = {
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "d": _DIGIT,
    "D": r"\P{Nd}",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
}
_INSIDE = {"s": _SPACE, "d": _DIGIT, "D": r"\P{Nd}", "w": _WORD}


def to_re2(pattern: str, where: str = "matches_regex") -> str:
    """The pattern with Unicode ``\\s``, ``\\d``, ``\\w`` (and negations) spelled for RE2.

    Args:
        pattern: a regex as declared (Unicode ``\\s``, ``\\d``, ``\\w``).
        where: names the expectation, for errors.

    Returns:
        A pattern that RE2 (DuckDB) matches where Python's ``re`` and Rust's ``regex`` do.

    Example:
        >>> to_re2(r"^\\d{5}$")
        '^\\\\p{Nd}{5}$'
    """
    return _translate(pattern, _OUTSIDE, _INSIDE, where, "DuckDB")


def to_postgres(pattern: str, where: str = "matches_regex") -> str:
    """The pattern with Unicode ``\\s``, ``\\d``, ``\\w`` (and negations) spelled for PostgreSQL.

    Args:
        pattern: a regex as declared (Unicode ``\\s``, ``\\d``, ``\\w``).
        where: names the expectation, for errors.

    Returns:
        A PostgreSQL (ARE) pattern whose classes are explicit code-point ranges.
    """
    space, digit, word = _pg_classes()
    outside = {
        "s": f"[{space}]",
        "S": f"[^{space}]",
        "d": f"[{digit}]",
        "D": f"[^{digit}]",
        "w": f"[{word}]",
        "W": f"[^{word}]",
    }
    return _translate(pattern, outside, {"s": space, "d": digit, "w": word}, where, "PostgreSQL")


# Planes 4-13 have no assigned code points and 15-16 are private use; plane 14 has only
# tags and variation selectors. Scanning the rest keeps the one-time build short.
_SCAN = (range(0, 0x40000), range(0xE0000, 0xE0200))


def _is_word(cp: int, category: str) -> bool:
    return (
        category[0] in "LM"
        or category in ("Nd", "Pc", "Nl")
        or cp in (0x200C, 0x200D)
        or any(lo <= cp <= hi for lo, hi in _OTHER_ALPHABETIC_SO)
    )


@functools.cache
def _pg_classes() -> tuple[str, str, str]:
    """The inside of PostgreSQL bracket lists for White_Space, Nd and word characters."""
    space: list[int] = []
    digit: list[int] = []
    word: list[int] = []
    for block in _SCAN:
        for cp in block:
            category = unicodedata.category(chr(cp))
            if chr(cp) in _WHITE_SPACE:
                space.append(cp)
            if category == "Nd":
                digit.append(cp)
            if _is_word(cp, category):
                word.append(cp)
    return _ranges(space), _ranges(digit), _ranges(word)


def _ranges(points: list[int]) -> str:
    """Sorted code points as ``\\uXXXX-\\uYYYY`` ranges."""
    out: list[str] = []
    i = 0
    while i < len(points):
        j = i
        while j + 1 < len(points) and points[j + 1] == points[j] + 1:
            j += 1
        first, last = points[i], points[j]
        out.append(_escape(first) if first == last else f"{_escape(first)}-{_escape(last)}")
        i = j + 1
    return "".join(out)


def _escape(cp: int) -> str:
    return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def _translate(
    pattern: str, outside: Mapping[str, str], inside: Mapping[str, str], where: str, engine: str
) -> str:
    """Replace the class escapes of ``pattern``, outside and inside bracket lists."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            letter = pattern[i + 1]
            table = inside if in_class else outside
            if letter in table:
                out.append(table[letter])
            elif in_class and letter in "SWD" and letter.lower() in table:
                raise ExpectationDefinitionError(
                    f"{where}: \\{letter} inside [...] cannot run in {engine} with its Unicode "
                    f"meaning; write the class negated instead (e.g. [^\\s@] rather than [\\S@])."
                )
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class and pattern.startswith("[:", i):  # a POSIX class such as [:alpha:]
            end = pattern.find(":]", i + 2)
            if end != -1:
                out.append(pattern[i : end + 2])
                i = end + 2
                continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            i += 1
            # a ']' (after an optional '^') right at the start is a literal
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("]")
                i += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)
