"""CSV robustness (issue 12) and the malformed-CSV half of the bad-input corpus.

Each case is a file generated into tmp_path and read through ``FileSource``; each
asserts its counts (lines in = header + loaded + quarantined + blank + continuation,
against an independent line count) and the one-line reason of every quarantined line
(file, line, column).
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import pyarrow as pa
import pytest
from file_corpus import data_lines, physical_lines, read, reasons, write

from headrace.connectors.sources import FileSource
from headrace.connectors.sources.csv import CsvReader
from headrace.errors import ConnectorError

# -- the defects of the issue --------------------------------------------------------


def test_an_unterminated_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    lines = data_lines()
    lines[51] = '51,"abc,1.0'  # line 52 of 101
    path = write(tmp_path, "runaway.csv", "\n".join(lines) + "\n")
    table, src, report = read(path)
    # was: 50 loaded + 1 quarantined, lines 53..101 swallowed into the broken record
    assert (report.lines, report.loaded, report.quarantined) == (101, 99, 1)
    assert report.lines == physical_lines(path)
    assert table.column("id").to_pylist() == [i for i in range(1, 101) if i != 51]
    bad = reasons(src)[52]
    assert bad.text == '51,"abc,1.0'
    assert "unterminated quote in column 'name'" in bad.reason
    assert "reading resumes at the next" in bad.reason


def test_a_runaway_quote_closed_by_a_later_stray_quote_resynchronises(tmp_path: Path) -> None:
    lines = data_lines()
    lines[51] = '51,"abc,1.0'
    lines[59] = '59,"x",59.5'  # pairs with the runaway quote: "...\n59," then x" is broken
    lines[80] = '80,y",80.5'  # a stray quote ending a field closes cleanly
    lines[70] = '70,"z,1'  # a second runaway, closed by the stray quote on line 81
    path = write(tmp_path, "stray.csv", "\n".join(lines) + "\n")
    table, src, report = read(path)
    assert sorted(reasons(src)) == [52, 71]
    assert all("unterminated quote in column 'name'" in m.reason for m in src.malformed)
    assert (report.loaded, report.quarantined, report.lines) == (98, 2, 101)
    names = dict(zip(table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True))
    assert names[59] == "x" and names[80] == 'y"' and names[52] == "name 52"


def test_a_runaway_quote_closed_on_the_next_line_is_not_one_merged_row(tmp_path: Path) -> None:
    lines = data_lines(10)
    lines[5] = '5,"abc,5.5'
    lines[6] = '6,def",6.5'  # closes the runaway: "abc,5.5\n6,def" would be one value
    path = write(tmp_path, "two.csv", "\n".join(lines) + "\n")
    table, src, report = read(path)
    assert sorted(reasons(src)) == [6]  # the opening line only; line 7 reads on its own
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert table.column("name").to_pylist()[4] == 'def"'
    assert (report.loaded, report.quarantined, report.continued) == (9, 1, 0)


def test_invalid_utf8_quarantines_its_line_only(tmp_path: Path) -> None:
    raw = "\n".join(data_lines(10)).encode() + b"\n"
    raw = raw.replace(b"name 4", b"na\xffme 4")
    path = write(tmp_path, "latin.csv", raw)
    table, src, report = read(path)  # was: the whole file refused
    assert (report.loaded, report.quarantined) == (9, 1)
    bad = reasons(src)[5]
    assert "not valid utf-8: byte 5 of the line is b'\\xff'" in bad.reason
    assert bad.text == "4,na\\xffme 4,4.5"


def test_a_field_over_the_old_block_size_is_read(tmp_path: Path) -> None:
    lines = data_lines(10)
    lines[5] = "5," + "x" * (5 << 20) + ",5.5"  # 5 MiB: over the old 4 MiB block
    path = write(tmp_path, "wide.csv", "\n".join(lines) + "\n")
    table, src, report = read(path)  # was: "straddling object straddles two block boundaries"
    assert (report.loaded, report.quarantined) == (10, 0)
    assert len(table.column("name")[4].as_py()) == 5 << 20


def test_a_field_over_max_record_bytes_quarantines_its_line(tmp_path: Path) -> None:
    lines = data_lines(10)
    lines[5] = "5," + "x" * 3000 + ",5.5"
    path = write(tmp_path, "wide.csv", "\n".join(lines) + "\n")
    table, src, report = read(path, max_record_bytes=1000)
    assert (report.lines, report.loaded, report.quarantined) == (11, 9, 1)
    bad = reasons(src)[6]
    assert bad.reason == "the line is 3006 bytes, over max_record_bytes=1000; raise " + (
        "max_record_bytes to read it"
    )
    assert bad.text.startswith("5,xxx") and len(bad.text) == 1000
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 6, 7, 8, 9, 10]


def test_a_field_over_max_record_bytes_by_default_quarantines_only_its_line(
    tmp_path: Path,
) -> None:
    lines = data_lines(10)
    lines[5] = "5," + "x" * (9 << 20) + ",5.5"  # 9 MiB: was "straddling object", file refused
    path = write(tmp_path, "wider.csv", "\n".join(lines) + "\n")
    table, src, report = read(path)
    assert (report.lines, report.loaded, report.quarantined) == (11, 9, 1)
    assert reasons(src)[6].reason.startswith(f"the line is {(9 << 20) + 6} bytes, over ")


@pytest.mark.slow
def test_a_100_mb_single_field_quarantines_its_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with open(path, "w") as fh:
        fh.write("id,name,amount\n1,a,1.5\n2,")
        for _ in range(100):
            fh.write("y" * (1 << 20))
        fh.write(",2.5\n3,c,3.5\n")
    table, src, report = read(path)
    assert (report.lines, report.loaded, report.quarantined) == (4, 2, 1)
    assert table.column("id").to_pylist() == [1, 3]
    assert "the line is 104857606 bytes, over max_record_bytes=8388608" in reasons(src)[3].reason


def test_nan_in_a_float_column_follows_the_explicit_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "nan.csv", "id,x\n1,1.5\n2,NaN\n3,\n4,nan\n5,NULL\n")
    kept, src, _ = read(path)  # default: keep, NaN is a float value (was: silently NULL)
    values = kept.column("x").to_pylist()
    assert values[0] == 1.5 and math.isnan(values[1]) and math.isnan(values[3])
    assert values[2] is None and values[4] is None  # empty and NULL are the null markers
    nulled, _, report = read(path, nan="null")
    assert nulled.column("x").to_pylist() == [1.5, None, None, None, None]
    assert report.nan_to_null == 2 and "2 NaN loaded as NULL" in str(report)
    quarantined, src, report = read(path, nan="quarantine")
    assert quarantined.column("id").to_pylist() == [1, 3, 5]
    assert reasons(src)[3].reason == (
        "column 'x': 'NaN' is NaN (the source's nan rule is 'quarantine')"
    )
    with pytest.raises(ConnectorError, match="Unknown nan rule 'nul'.*Did you mean 'null'"):
        FileSource(path, nan="nul")


def test_nan_in_an_integer_column_is_not_a_null(tmp_path: Path) -> None:
    path = write(tmp_path, "nan_int.csv", "id,n\n1,5\n2,NaN\n3,7\n")
    table, src, _ = read(path, types={"n": pa.int64()})
    assert table.column("n").to_pylist() == [5, 7]  # was: 5, NULL, 7
    assert reasons(src)[3].reason == "column 'n': 'NaN' is not int64"


def test_null_markers_are_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, "nulls.csv", "id,n,s\n1,-,NULL\n2,NULL,-\n")
    table, src, _ = read(path, null_values=["-"], types={"n": pa.int64(), "s": pa.string()})
    assert table.column("n").to_pylist() == [None]  # NULL is no longer a marker
    assert reasons(src)[3].reason == "column 'n': 'NULL' is not int64"
    assert table.column("s").to_pylist() == ["NULL"]  # text columns keep every text


def test_every_file_is_accounted_for_on_the_extract_and_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "a.csv", "id,n\n1,2\n2,x\n\n3,4\n")
    write(tmp_path, "b.csv", 'id,n\n4,"5"\n5\n')
    src = FileSource(tmp_path, types={"n": pa.int64()})
    with caplog.at_level(logging.INFO, logger="headrace.connectors.sources.csv"):
        extract = src.read()
        assert extract.to_table().column("id").to_pylist() == [1, 3, 4]
    a, b = extract.reports
    assert (a.lines, a.header, a.loaded, a.quarantined, a.blank) == (5, 1, 2, 1, 1)
    assert (b.lines, b.header, b.loaded, b.quarantined, b.blank) == (3, 1, 1, 1, 0)
    assert str(a) == f"{tmp_path / 'a.csv'}: 5 lines = 1 header + 2 loaded + 1 quarantined " + (
        "+ 1 blank + 0 continuation"
    )
    assert str(a) in caplog.text and str(b) in caplog.text
    assert "a.csv: 1 lines quarantined, first" in caplog.text


# -- the malformed-CSV corpus --------------------------------------------------------


def test_ragged_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    table, src, report = read(path)
    assert table.column("a").to_pylist() == [1, 10]
    found = reasons(src)
    assert found[3].reason == "expected 3 fields, found 2" and found[3].text == "4,5"
    assert found[4].reason == "expected 3 fields, found 4"
    assert (report.lines, report.quarantined) == (5, 2)


def test_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbfid,name\n1,a\n")
    table, _, _ = read(path)
    assert table.schema.names == ["id", "name"] and table.column("id").to_pylist() == [1]


def test_mixed_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.csv", b"id,name\r\n1,a\n2,b\r3,c\r\n4,x\n5,e")
    table, src, report = read(path, types={"name": pa.string()})
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("name").to_pylist() == ["a", "b", "c", "x", "e"]
    assert report.lines == 6 == physical_lines(path)
    bad = write(tmp_path, "mixed_bad.csv", b"id,n\r\n1,2\r3,x\n4,5\r\n")
    _, src, _ = read(bad, types={"n": pa.int64()})
    assert reasons(src)[3].reason == "column 'n': 'x' is not int64"


def test_embedded_newlines_in_quotes_are_values_and_lines_stay_physical(tmp_path: Path) -> None:
    content = 'id,note,n\n1,"two\nlines",1\n2,"three\r\n\nlines",2\n3,plain,x\n4,"a ""q""",4\n5,z\n'
    path = write(tmp_path, "multiline.csv", content)
    table, src, report = read(path, types={"n": pa.int64()})
    assert table.column("note").to_pylist() == ["two\nlines", "three\r\n\nlines", 'a "q"']
    found = reasons(src)
    assert found[7].reason == "column 'n': 'x' is not int64"  # physical line 7, not record 4
    assert found[9].reason == "expected 3 fields, found 2"
    assert (report.lines, report.loaded, report.continued, report.quarantined) == (9, 3, 3, 2)
    assert report.lines == physical_lines(path)


def test_blank_lines_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "blank.csv", "id,n\n\n1,2\n\n\n2,3\n,\n")
    table, src, report = read(path, types={"n": pa.int64()})
    assert table.column("id").to_pylist() == [1, 2, None]  # "," is a row of nulls, not blank
    assert (report.lines, report.blank, report.loaded) == (7, 3, 3)


def test_a_quoted_value_across_the_reader_pieces(tmp_path: Path) -> None:
    """Pieces of 40 bytes (max_record_bytes=80): records cross every piece boundary."""
    lines = ["id,note,n"] + [
        f'{i},"note {i}\nsecond, line",{i}' if i % 3 else f"{i},short,{i}" for i in range(1, 40)
    ]
    lines[20] = '20,"open,20'
    path = write(tmp_path, "pieces.csv", "\n".join(lines) + "\n")
    small, src_small, report = read(path, max_record_bytes=80)
    big, src_big, _ = read(path)
    assert small.equals(big)
    assert [(m.line, m.reason) for m in src_small.malformed] == [
        (m.line, m.reason) for m in src_big.malformed
    ]
    assert report.lines == physical_lines(path)
    assert report.quarantined >= 1 and report.loaded >= 37


def test_quoting_off_and_other_delimiters(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.tsv", 'id\tname\n1\t"a\n2\tb"\n')
    table, _, report = read(path, delimiter="\t", quote_char=False, format="csv")
    assert table.column("name").to_pylist() == ['"a', 'b"']
    assert report.lines == 3


def test_a_file_that_is_not_csv_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.csv", b"")
    with pytest.raises(ConnectorError, match=r"empty.csv:1: the first line is empty"):
        FileSource(empty).read()
    binary = write(tmp_path, "blob.csv", b"\xff\xfe" + bytes(range(256)) * 10)
    with pytest.raises(ConnectorError, match=r"blob.csv:1: the first line is not valid utf-8"):
        FileSource(binary).read()
    wide = write(tmp_path, "wide.csv", "x" * 5000)
    with pytest.raises(ConnectorError, match=r"wide.csv:1: the first line is longer than"):
        FileSource(wide, max_record_bytes=1000).read()
    with pytest.raises(ConnectorError, match="transcode the file to UTF-8"):
        FileSource(wide, encoding="utf-16").read()


def test_random_damage_never_crashes_and_every_line_is_accounted(tmp_path: Path) -> None:
    """150 seeded files of random fields, quotes, line ends and bad bytes: each one reads
    (or fails with a ConnectorError), its lines add up against an independent count, and
    small pieces (records across every piece boundary) read as the whole file does."""
    alphabet = [b"a", b"1", b",", b'"', b"\n", b"\r\n", b"\r", b"\xff", b" ", b"2.5", b"NaN"]
    text = {name: pa.string() for name in ("id", "name", "amount")}
    for seed in range(150):
        rnd = random.Random(seed)
        body = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 400)))
        path = write(tmp_path, f"damaged_{seed}.csv", b"id,name,amount\n" + body)
        whole, src, report = read(path, types=text)
        assert report.lines == physical_lines(path), seed
        pieces, small, _ = read(path, types=text, max_record_bytes=30)
        if not any("max_record_bytes" in m.reason for m in small.malformed):
            assert pieces.equals(whole), seed
            assert [m.line for m in small.malformed] == [m.line for m in src.malformed], seed


class _LosingReader(CsvReader):
    """A reader with a bug: it drops the last row of every batch without a word."""

    def _typed(self, parsed):
        for batch in super()._typed(parsed):
            self.report.loaded -= 1
            yield batch.slice(0, batch.num_rows - 1)


def test_a_line_the_reader_cannot_account_for_is_a_loud_error(tmp_path: Path) -> None:
    path = write(tmp_path, "lost.csv", "\n".join(data_lines(10)) + "\n")
    src = FileSource(path)
    schema, batches = _LosingReader(src, path).open()
    with pytest.raises(ConnectorError) as caught:
        list(batches)
    assert str(caught.value).startswith(
        f"{path}: 11 lines read but 10 accounted for ({path}: 11 lines = 1 header + 9 loaded"
    )
