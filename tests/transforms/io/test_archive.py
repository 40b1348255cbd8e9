import gzip
import os

import pytest

from wirestream.transforms.io.archive import (ArchiveFile, SourceError, list_archive_files, read_archive_file,
                                   split_json_array, split_reuters)


def test_listing_a_directory_recursively_keeps_only_archive_files(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.xml").write_text("<rss/>")
    (tmp_path / "notes.md").write_text("x")
    os.utime(tmp_path / "a.jsonl", (1_700_000_000, 1_700_000_000))
    files = list_archive_files(str(tmp_path))
    assert [(os.path.basename(f.path), f.format_hint) for f in files] == [("a.jsonl", "jsonl"),
                                                                         ("b.xml", "xml")]
    assert files[0].ingested_at == "2023-11-14T22:13:20Z"  # the file's mtime, in UTC


def test_glob_and_errors(tmp_path):
    (tmp_path / "x.sgm").write_text("<REUTERS NEWID=\"1\"></REUTERS>")
    assert len(list_archive_files(str(tmp_path / "*.sgm"))) == 1
    with pytest.raises(SourceError, match="no archive files found"):
        list_archive_files(str(tmp_path / "missing" / "*.jsonl"))
    with pytest.raises(SourceError, match="no archive files found"):
        list_archive_files(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.pdf").write_text("%PDF")
    with pytest.raises(SourceError, match="unsupported archive file type"):
        list_archive_files(str(tmp_path / "x.pdf"))


def test_jsonl_gz_lines_keep_their_line_numbers_and_bytes(tmp_path):
    path = tmp_path / "w.jsonl.gz"
    lines = [b'{"title": "a"}', b"", b"not json", b'{"title": "\xc3\xa9"}']
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    records = list(read_archive_file(ArchiveFile(str(path), "jsonl", "2024-01-01T00:00:00Z")))
    assert [(r.origin.line, r.payload) for r in records] == [
        (1, lines[0]), (3, lines[2]), (4, lines[3])]
    assert all(r.format_hint == "json" and r.origin.ingested_at == "2024-01-01T00:00:00Z"
               for r in records)


def test_json_array_elements_are_split_byte_for_byte():
    data = '[ {"a": 1},\n  {"b": "é", "c": [1, 2]} ,{"d":null}]\n'.encode()
    assert split_json_array(data) == [b'{"a": 1}', '{"b": "é", "c": [1, 2]}'.encode(), b'{"d":null}']
    assert split_json_array(b'{"a": 1}') is None
    assert split_json_array(b'[{"a": 1}, {"b": ') is None  # malformed: parse reports the whole file
    assert split_json_array(b"[]") == []


def test_reuters_elements_with_line_numbers(shared_data):
    data = (shared_data / "reuters21578" / "original" / "reut2-000.sgm").read_bytes()
    elements = list(split_reuters(data))
    assert len(elements) == 1000
    line, first, closed = elements[0]
    assert closed and all(element[2] for element in elements)
    assert line == 2 and first.startswith(b'<REUTERS TOPICS="YES"') and first.endswith(b"</REUTERS>")
    assert data.split(b"\n")[elements[1][0] - 1].startswith(b"<REUTERS")


def test_whole_file_formats_are_one_record(tmp_path):
    path = tmp_path / "story.txt"
    path.write_bytes(b"Head\n\nBody.")
    (record,) = read_archive_file(ArchiveFile(str(path), "txt", "2024-01-01T00:00:00Z"))
    assert record.payload == b"Head\n\nBody." and record.format_hint == "txt"
    assert record.origin.path == str(path) and record.origin.line is None


def test_malformed_json_file_is_one_record(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"title": "x"},')
    (record,) = read_archive_file(ArchiveFile(str(path), "json", "2024-01-01T00:00:00Z"))
    assert record.payload == b'[{"title": "x"},'


def test_progress_line_counts_files_records_and_eta():
    import io

    from wirestream.transforms.io.archive import ArchiveProgress
    stream = io.StringIO()
    progress = ArchiveProgress(total_files=2, total_bytes=200, stream=stream)
    for _ in range(3):
        progress.record_done()
    progress.file_done(100)
    line = progress.line()
    assert line.startswith("files 1/2  records 3  ") and "ETA" in line and "ETA ?" not in line
    progress.file_done(100)
    assert stream.getvalue().endswith("\n") and "files 2/2  records 3" in stream.getvalue()


# --- damaged and hostile input: every damage is an accounted record -------------------------

from wirestream.schemas import RawRecord  # noqa: E402
from wirestream.transforms.parse import parse_record  # noqa: E402


def _stories(count: int) -> bytes:
    return b"".join(b'{"id": "s%d", "title": "Story %d", "body": "Text of story %d."}\n'
                    % (n, n, n) for n in range(count))


def _read(path, fmt) -> list[RawRecord]:
    return list(read_archive_file(ArchiveFile(str(path), fmt, "2024-01-01T00:00:00Z")))


def test_a_truncated_gzip_stream_ends_in_a_read_dead_letter_after_the_records_before_it(tmp_path):
    whole = gzip.compress(_stories(50))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[:len(whole) // 2])
    records = _read(path, "jsonl")
    good, damaged = [r for r in records if r.damage is None], [r for r in records if r.damage]
    assert len(damaged) == 1 and records[-1] is damaged[0]
    assert good and [r.origin.line for r in good] == list(range(1, len(good) + 1))
    assert all(r.payload.startswith(b'{"id": "s') and r.payload.endswith(b"}") for r in good)
    # the cut line is kept as it was read, with the line and decompressed byte where it broke
    cut = damaged[0]
    assert cut.origin.line == len(good) + 1
    assert "gzip" in cut.damage and "truncated" in cut.damage
    assert f"line {len(good) + 1}" in cut.damage and "byte" in cut.damage
    assert _stories(50).startswith(b"".join(r.payload + b"\n" for r in good) + cut.payload)
    (dead,) = parse_record(cut)
    assert dead.stage == "read" and dead.error == cut.damage and dead.raw == cut.payload


def test_a_gzip_cut_between_records_still_leaves_a_dead_letter(tmp_path):
    data = _stories(5)
    whole = gzip.compress(data)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[:-8])  # the trailer (CRC, size) is missing: the stream never ended
    records = _read(path, "jsonl")
    assert [r.damage is None for r in records] == [True] * 5 + [False]
    assert records[-1].payload == b"" and "gzip" in records[-1].damage


def test_a_corrupt_gzip_whole_file_format_is_a_dead_letter(tmp_path):
    path = tmp_path / "bad.xml.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage that is no deflate stream")
    (record,) = _read(path, "xml")
    assert record.damage and "gzip" in record.damage


def test_an_unclosed_reuters_element_is_a_read_dead_letter(tmp_path):
    data = (b'<!DOCTYPE lewis SYSTEM "lewis.dtd">\n'
            b'<REUTERS NEWID="1">\n<TEXT><TITLE>ONE</TITLE><BODY>a</BODY></TEXT>\n</REUTERS>\n'
            b'<REUTERS NEWID="2">\n<TEXT><TITLE>TWO</TITLE><BODY>b</BODY></TEXT>\n</REUTERS>\n'
            b'<REUTERS NEWID="3">\n<TEXT><TITLE>THREE</TITLE><BODY>cut off by a trunc')
    path = tmp_path / "cut.sgm"
    path.write_bytes(data)
    records = _read(path, "sgm")
    assert [r.damage is None for r in records] == [True, True, False]
    assert records[2].origin.line == 8 and records[2].payload.startswith(b'<REUTERS NEWID="3"')
    assert records[2].payload.endswith(b"by a trunc") and "unclosed" in records[2].damage


def test_a_reuters_element_opened_inside_another_splits_both(tmp_path):
    data = (b'<REUTERS NEWID="1">\n<TEXT><BODY>never closed</BODY></TEXT>\n'
            b'<REUTERS NEWID="2">\n<TEXT><TITLE>TWO</TITLE><BODY>b</BODY></TEXT>\n</REUTERS>\n')
    path = tmp_path / "x.sgm"
    path.write_bytes(data)
    records = _read(path, "sgm")
    assert [r.damage is None for r in records] == [False, True]
    assert [r.origin.line for r in records] == [1, 3]


def test_deeply_nested_json_file_is_one_dead_letter_not_a_crash(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (record,) = _read(path, "json")
    (dead,) = parse_record(record)
    assert dead.stage == "parse" and "nested deeper" in dead.error and dead.raw == record.payload


def test_special_files_are_skipped_with_a_warning_naming_each(tmp_path):
    (tmp_path / "good.jsonl").write_text("{}\n")
    os.mkfifo(tmp_path / "pipe.jsonl")
    os.symlink(tmp_path / "gone.jsonl", tmp_path / "dangling.jsonl")
    (tmp_path / "x.jsonl").mkdir()
    (tmp_path / "x.jsonl" / "inner.jsonl").write_text("{}\n")
    warnings: list[str] = []
    files = list_archive_files(str(tmp_path), warn=warnings.append)
    assert sorted(os.path.basename(f.path) for f in files) == ["good.jsonl", "inner.jsonl"]
    assert len(warnings) == 3
    for name, what in (("pipe.jsonl", "FIFO"), ("dangling.jsonl", "dangling symlink"),
                       ("x.jsonl", "directory")):
        (line,) = [w for w in warnings if w.split(":")[0].endswith(name)]
        assert what in line
    globbed: list[str] = []
    assert [os.path.basename(f.path) for f in list_archive_files(
        str(tmp_path / "*.jsonl"), warn=globbed.append)] == ["good.jsonl"]
    assert len(globbed) == 3
    with pytest.raises(SourceError, match="FIFO"):
        list_archive_files(str(tmp_path / "pipe.jsonl"))


def test_special_file_warnings_reach_stderr_by_default(tmp_path, capsys):
    (tmp_path / "good.jsonl").write_text("{}\n")
    os.mkfifo(tmp_path / "pipe.jsonl")
    list_archive_files(str(tmp_path))
    assert "pipe.jsonl" in capsys.readouterr().err


def test_a_file_over_the_file_bound_is_not_read_whole(tmp_path):
    path = tmp_path / "big.xml"
    path.write_bytes(b"<rss>" + b"x" * 10_000 + b"</rss>")
    (record,) = list(read_archive_file(ArchiveFile(str(path), "xml", "2024-01-01T00:00:00Z"),
                                       max_file_bytes=1000))
    assert record.damage and "1000" in record.damage and len(record.payload) <= 1000
    lines = tmp_path / "l.jsonl"
    lines.write_bytes(b'{"a": "' + b"y" * 5000 + b'"}\n{"b": 1}\n')
    long_line, short_line = read_archive_file(ArchiveFile(str(lines), "jsonl", "x"),
                                              max_file_bytes=1000)
    assert long_line.damage and long_line.origin.line == 1 and len(long_line.payload) <= 1000
    assert short_line.damage is None and short_line.payload == b'{"b": 1}'
    assert short_line.origin.line == 2


def test_an_unreadable_local_file_is_a_read_dead_letter_not_a_crash(tmp_path):
    # Listed as a file, then replaced by a directory before it was read.
    path = tmp_path / "gone.xml"
    path.mkdir()
    (record,) = _read(path, "xml")
    assert record.damage and "IsADirectoryError" in record.damage and record.payload == b""
