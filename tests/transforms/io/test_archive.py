import gzip
import os

import pytest

from transforms.io.archive import (ArchiveFile, SourceError, list_archive_files, read_archive_file,
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
    line, first = elements[0]
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

    from transforms.io.archive import ArchiveProgress
    stream = io.StringIO()
    progress = ArchiveProgress(total_files=2, total_bytes=200, stream=stream)
    for _ in range(3):
        progress.record_done()
    progress.file_done(100)
    line = progress.line()
    assert line.startswith("files 1/2  records 3  ") and "ETA" in line and "ETA ?" not in line
    progress.file_done(100)
    assert stream.getvalue().endswith("\n") and "files 2/2  records 3" in stream.getvalue()
