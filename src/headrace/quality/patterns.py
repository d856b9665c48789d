"""One regex meaning in every engine: Rust ``regex`` semantics, translated for DuckDB's RE2.

A ``matches_regex`` pattern means what it means in Polars (Rust ``regex``): ``\\s``,
``\\d`` and ``\\w`` are Unicode classes, as in Python's ``re`` (and so in Great
Expectations). DuckDB runs RE2, whose ``\\s``, ``\\d`` and ``\\w`` are ASCII only, so
the same check would pass ``"a\\xa0b@c.de"`` in DuckDB and fail it in Polars. Before a
pattern goes to DuckDB those classes are spelled out with Unicode properties, which RE2
knows:

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

``\\S`` and ``\\W`` inside a bracket class (``[\\S@]``) have no RE2 spelling and are
refused with a message. Word boundaries ``\\b``/``\\B`` stay ASCII in RE2: avoid them
on non-ASCII text. PostgreSQL's regex classes follow the database's locale.
"""

from __future__ import annotations

from headrace.quality.errors import ExpectationDefinitionError

_SPACE = (r"\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}"
          r"\x{202F}\x{205F}\x{3000}")
_WORD = (r"\p{L}\p{M}\p{Nd}\p{Pc}\p{Nl}\x{200C}\x{200D}\x{24B6}-\x{24E9}"
         r"\x{1F130}-\x{1F149}\x{1F150}-\x{1F169}\x{1F170}-\x{1F189}")
_DIGIT = r"\p{Nd}"

# Outside brackets: the replacement of each class; inside: what goes between the brackets.
_OUTSIDE = {"s": f"[{_SPACE}]", "S": f"[^{_SPACE}]", "d": _DIGIT, "D": r"\P{Nd}",
            "w": f"[{_WORD}]", "W": f"[^{_WORD}]"}
_INSIDE = {"s": _SPACE, "d": _DIGIT, "D": r"\P{Nd}", "w": _WORD}


def to_re2(pattern: str, where: str = "matches_regex") -> str:
    """The pattern with Unicode ``\\s``, ``\\d``, ``\\w`` (and negations) spelled for RE2.

    Args:
        pattern: a Rust-syntax regex, as declared.
        where: names the expectation, for errors.

    Returns:
        A pattern that RE2 (DuckDB) matches exactly where Rust ``regex`` does.

    Example:
        >>> to_re2(r"^\\d{5}$")
        '^\\\\p{Nd}{5}$'
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            letter = pattern[i + 1]
            table = _INSIDE if in_class else _OUTSIDE
            if letter in table:
                out.append(table[letter])
            elif in_class and letter in "SW":
                raise ExpectationDefinitionError(
                    f"{where}: \\{letter} inside [...] cannot run in DuckDB with Unicode meaning; "
                    f"write the class negated instead (e.g. [^\\s@] rather than [\\S&&[^@]])."
                )
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class and pattern.startswith("[:", i):  # a POSIX class such as [:alpha:]
            end = pattern.find(":]", i + 2)
            if end != -1:
                out.append(pattern[i:end + 2])
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
