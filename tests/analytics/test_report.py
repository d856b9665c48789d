"""The HTML report is self-contained, well formed, escaped, and draws every chart."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from headrace.analytics import Analyzer
from headrace.analytics.report import format_value, render_html, sparkline, write_html

VOID = {"meta", "br", "img", "hr", "input", "link", "col", "area", "base", "wbr", "source"}


class _Checker(HTMLParser):
    """Checks that every opened element is closed in order, and records tags and URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def _check(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    return checker


def test_report_is_self_contained_and_well_formed(
    analyzer: Analyzer, sales: str, tmp_path: Path
) -> None:
    analyzer.query(
        "CREATE TABLE t AS SELECT i AS n, DATE '2024-01-01' + i::INT AS day, "
        "'<script>alert(1)</script>' AS evil, ['a','b','c'][i%3+1] AS cat FROM range(50) r(i)"
    )
    path = write_html(analyzer.profile("t"), tmp_path / "deep" / "report.html")
    text = path.read_text(encoding="utf-8")
    checker = _check(text)
    assert checker.urls == []  # nothing loaded from anywhere
    assert "<script" not in text and "&lt;script&gt;" in text
    assert checker.tags.count("svg") == 2 + 2  # histograms of n and day, top values of evil and cat
    assert text.count("<rect") >= 2 * 20 + 3
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)


def test_report_of_hostile_names_and_an_empty_table(analyzer: Analyzer, sales: str) -> None:
    text = render_html(analyzer.profile(sales))
    _check(text)
    assert "drop table x; --" in text and "a &quot;b&quot;" in text
    analyzer.query("CREATE TABLE e (x INTEGER)")
    _check(render_html(analyzer.profile("e"), title="Empty <table>"))


def test_sparkline_and_value_formatting() -> None:
    assert sparkline([0, 1, 8, 4]) == " ▁█▄"
    assert sparkline([]) == "" and sparkline([0, 0]) == ""
    assert sparkline([1, 1000])[0] == "▁"  # rare values stay visible
    assert format_value(None) == "–"
    assert format_value(1 / 3) == "0.333333"
    assert format_value("x" * 50, width=10) == "x" * 9 + "…"
