"""Bad input refused in one line with exit 2 (issue 29, second pass): truncated compressed corpora,
component options checked like their model keys, unbounded sizes, odd paths and names, and the
command line's own values."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

from workbench.data import DataError, DataSettings, prepare

HAVE_ZSTD = importlib.util.find_spec("zstandard") is not None
TEXT = "".join(f"line {i}: {i * 7919 % 10007} words of a corpus\n" for i in range(20_000)).encode()


# --- D5: a truncated compressed file is refused, never read as a shorter document ---------------------

def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _cuts(blob: bytes, first: int = 0) -> list[int]:
    """Cut points inside a frame (the first ``first`` bytes are a complete one): in the header, the
    middle, the last bytes."""
    rest = len(blob) - first
    return sorted({first + 2, first + 7, first + rest // 2, len(blob) - 4, len(blob) - 1} | ({first // 2} if first else set()))


@pytest.mark.skipif(not HAVE_ZSTD, reason="zstandard is not installed")
@pytest.mark.parametrize("suffix", [".txt.zst", ".jsonl.zst"])
def test_a_truncated_zstd_file_is_refused_naming_it(tmp_path, suffix):
    data = b"".join(b'{"text": "record %d"}\n' % i for i in range(5000)) if suffix == ".jsonl.zst" else TEXT
    first = _zstd(data[: len(data) // 2])
    blob = first + _zstd(data[len(data) // 2:])  # two frames, as pzstd writes
    for cut in _cuts(blob, len(first)):
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError) as err:
            prepare(DataSettings(source="files", paths=[path.name], cache_dir=str(tmp_path / f"c{cut}")), tmp_path)
        message = str(err.value)
        assert err.value.key == "data.paths" and path.name in message and "truncated" in message
        assert "\n" not in message


@pytest.mark.skipif(not HAVE_ZSTD, reason="zstandard is not installed")
def test_concatenated_zstd_frames_are_read_whole(tmp_path):
    from workbench.data.formats import read_documents

    path = tmp_path / "two.txt.zst"
    path.write_bytes(_zstd(TEXT) + _zstd(b"the second frame\n"))
    (doc,) = read_documents(path, "two", "text")
    assert doc.data == TEXT + b"the second frame\n"


def test_a_truncated_gzip_file_is_refused_at_any_cut(tmp_path):
    blob = gzip.compress(TEXT, mtime=0)
    for cut in _cuts(blob):
        path = tmp_path / f"cut{cut}.txt.gz"
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError) as err:
            prepare(DataSettings(source="files", paths=[path.name], cache_dir=str(tmp_path / f"c{cut}")), tmp_path)
        assert path.name in str(err.value) and "truncated" in str(err.value) and "\n" not in str(err.value)
