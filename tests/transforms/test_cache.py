"""The user's cache of built stage data (transforms/cache.py): old caches go, used ones stay."""

import os
import time

from wirestream.transforms import cache


def _aged(path, days):
    stamp = time.time() - days * 86_400
    os.utime(path, (stamp, stamp))


def _cache_file(tmp_path, name, tag, suffix=".pickle", days=0):
    path = tmp_path / f"{name}-{tag * 32}{suffix}"
    path.write_bytes(b"old")
    _aged(path, days)
    return path


def test_writing_a_cache_removes_caches_of_its_name_unused_for_a_month(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = cache.cache_dir()
    directory.mkdir(parents=True)
    old_index = _cache_file(directory, "language-profiles", "a", ".pickle", days=40)
    old_matrix = _cache_file(directory, "language-profiles", "a", ".npy", days=40)
    old_temporary = _cache_file(directory, "language-profiles", "b", ".pickle12ab.tmp", days=40)
    in_use = _cache_file(directory, "language-profiles", "c", ".pickle", days=3)  # another configuration's
    other_kind = _cache_file(directory, "gazetteer", "d", ".pickle", days=40)
    new = cache.cache_path("language-profiles", [b"new build"], ".pickle")
    cache.write_pickle(new, {"x": 1})
    assert cache.read_pickle(new, dict) == {"x": 1}
    assert not old_index.exists() and not old_matrix.exists() and not old_temporary.exists()
    assert in_use.exists() and other_kind.exists()


def test_a_cache_read_recently_is_kept_with_all_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    read = cache.cache_path("language-profiles", [b"the build in use"], ".pickle")
    cache.write_pickle(read, {"rows": 2})
    matrix = read.with_suffix(".npy")
    matrix.write_bytes(b"matrix")
    _aged(read, 40)
    _aged(matrix, 40)
    assert cache.read_pickle(read, dict) == {"rows": 2}  # marks it used
    cache.write_pickle(cache.cache_path("language-profiles", [b"another build"], ".pickle"), {})
    assert read.exists() and matrix.exists()


def test_nothing_is_removed_from_caches_that_are_not_this_shape(tmp_path):
    stray = tmp_path / "language-profiles-notes.txt"
    stray.write_text("mine")
    _aged(stray, 400)
    kept = tmp_path / f"language-profiles-{'e' * 32}.pickle"
    kept.write_bytes(b"")
    assert cache.remove_stale(kept) == []
    assert stray.exists()
