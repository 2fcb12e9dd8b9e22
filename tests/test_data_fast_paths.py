"""Issue 29's fast paths give the old results: Arrow parsing (taken only where it equals pandas),
narrow codes, vocabulary ids, counting in the workers, file slices, table-driven CRC-32C."""

import gzip
import os
import pathlib
import subprocess
import sys

import google_crc32c
import numpy as np
import pytest

from optfusion_tf.data import arrow_block, block_parser, formats, raw_input, split
from optfusion_tf.data.count_pass import count_block
from optfusion_tf.data.id_cache import IdCacheWriter, read_id_block
from optfusion_tf.data.raw_input import RawBlock
from optfusion_tf.data.tfrecord_writer import equal_length_crc32c
from optfusion_tf.data.vocabulary import ValueCounter

CSV = formats.csv_format(
    "t",
    ["y", "n", "c"],
    label_col="y",
    categorical_cols=["c"],
    numeric_cols=["n"],
)


def _block(text: str) -> RawBlock:
    data = text.encode()
    return RawBlock(data, 2, data.count(b"\n"))


def _parsed(block: RawBlock, fmt: formats.RawFormat, monkeypatch, arrow: bool):
    with monkeypatch.context() as m:
        if not arrow:
            m.setattr(arrow_block, "read_block", lambda *args: None)
        return block_parser.parse_block(block, fmt)


def _summary(parsed: block_parser.ParsedBlock) -> tuple:
    return (
        parsed.row_lines.tolist(),
        parsed.labels.tolist(),
        [(k.codes.tolist(), k.uniques) for k in parsed.fields],
        [(b.reason, b.lines.tolist(), b.first_detail) for b in parsed.bad],
        parsed.blank_lines,
    )


@pytest.mark.parametrize(
    "text, taken",
    [
        ("1,3,a\n0,,b\n1,-2.5,a\n0,+7.,\n1,.5,b\n", True),
        ("1,3,a\n0,1e5,b\n1, 3,a\n0,inf,a\n1,12345678901234567890,a\n", True),
        ("1,3,a\n0,NA,b\n", False),  # not a number: the pandas path reports it
        ('1,3,"a"\n', False),  # a quote in a quoting format
        ("1,3,a\r\n", False),
        ("1,3\n0,1,a,b\n", False),  # wrong column counts
    ],
)
def test_fast_path_taken_only_where_pandas_agrees(text, taken):
    block = _block(text)
    assert (arrow_block.read_block(block.data, block.n_lines, CSV) is not None) is taken


def test_invalid_utf8_goes_to_pandas():
    data = b"1,3,\xff\n"
    assert arrow_block.read_block(data, 1, CSV) is None


@pytest.mark.parametrize(
    "text",
    [
        "1,3,a\n0,,b\n1,-2.5,a\n0,+7.,\n1,.5,b\n1,3.0,c\n",
        "1,1e5,a\n0, 3,b\n1,0.1234567890123456789,a\n0,inf,c\n1,-1E-2,c\n",
        # bad labels drop rows whose values were seen first: first-seen order is that of the
        # kept rows (b before a, 9 before 3)
        "2,3,a\n0,9,b\n1,3,a\n0,,c\n",
    ],
)
def test_fast_path_equals_pandas_path(text, monkeypatch):
    block = _block(text)
    fast = _parsed(block, CSV, monkeypatch, arrow=True)
    slow = _parsed(block, CSV, monkeypatch, arrow=False)
    assert _summary(fast) == _summary(slow)


def test_fast_path_golden_after_a_bad_row():
    parsed = block_parser.parse_block(_block("2,3,a\n0,9,b\n1,3,a\n0,,c\n"), CSV)
    assert parsed.row_lines.tolist() == [1, 2, 3]
    numeric, categorical = parsed.fields
    assert (numeric.codes.tolist(), numeric.uniques) == ([0, 1, 2], ["4", "1", ""])
    assert (categorical.codes.tolist(), categorical.uniques) == ([0, 1, 2], ["b", "a", "c"])
    assert [(b.reason, b.lines.tolist()) for b in parsed.bad] == [("bad_label", [2])]


def test_equal_length_crc32c_matches_google_crc32c():
    rng = np.random.default_rng(0)
    for length in (1, 7, 150):
        records = rng.integers(0, 256, (300, length), dtype=np.uint8)
        records[:, : length // 2] = 9  # constant bytes, as the records' heads
        expected = [google_crc32c.value(r.tobytes()) for r in records]
        assert equal_length_crc32c(records).tolist() == expected
    assert equal_length_crc32c(np.zeros((0, 4), np.uint8)).shape == (0,)


def test_value_counter_ids_first_seen_across_blocks():
    counter = ValueCounter()
    first = counter.add(["x", "y"], np.array([2, 1]))
    second = counter.add(["z", "x", "w"], np.array([1, 2, 0]))
    assert first.tolist() == [0, 1]
    assert second.tolist() == [2, 0, 3]
    vocab = counter.finalize(1)
    assert vocab.values == ["x", "y", "z"]  # counts x 4, y 1, z 1 (ties first seen); w 0
    assert vocab.counts.tolist() == [4, 1, 1]
    assert vocab.remap.tolist() == [0, 1, 2, 3]


def test_workers_count_the_scope_and_the_cache_gives_global_ids(tmp_path):
    # Lines 2..6; line 4 has a bad label; splits train, test, train, train, validation.
    block = _block("1,3,a\n0,,b\nx,1,a\n1,3,b\n0,5,c\n")
    splits = np.array([split.TRAIN, split.TEST, split.TRAIN, split.TRAIN, split.VALIDATION])
    counted = count_block(block, CSV, splits.astype(np.uint8), scope_all=False)
    assert counted.splits.tolist() == [split.TRAIN, split.TEST, split.TRAIN, split.VALIDATION]
    assert counted.uniques == [["1", "", "2"], ["a", "b", "c"]]  # buckets of n, then c
    assert counted.codes.tolist() == [[0, 0], [1, 1], [0, 1], [2, 2]]
    assert [c.tolist() for c in counted.counts] == [[2, 0, 0], [1, 1, 0]]  # train rows only
    every = count_block(block, CSV, splits.astype(np.uint8), scope_all=True)
    assert [c.tolist() for c in every.counts] == [[2, 1, 1], [1, 2, 1]]

    cache = IdCacheWriter(str(tmp_path / "ids"))
    key_ids = [np.array([4, 0, 1], np.int32), np.array([1, 0, 2], np.int32)]
    cache.write(counted.codes, key_ids, counted.labels, counted.splits)
    cache.close()
    cached = read_id_block(cache.path, cache.offsets[0])
    remap = np.arange(100, 108)  # field 0 owns remap[0:5], field 1 remap[5:8]
    assert cached.global_ids(remap, np.array([0, 5])).tolist() == [
        [104, 106], [100, 105], [104, 105], [101, 107]
    ]
    assert cached.labels.tolist() == [1, 0, 1, 0]


def test_codes_sent_in_the_narrowest_type():
    assert block_parser.FieldKeys.narrowed(np.arange(256), ["x"] * 256).codes.dtype == np.uint8
    assert block_parser.FieldKeys.narrowed(np.arange(257), ["x"] * 257).codes.dtype == np.uint16
    wide = block_parser.FieldKeys.narrowed(np.arange(3), ["x"] * 70000)
    assert wide.codes.dtype == np.int32 and wide.codes.tolist() == [0, 1, 2]
    parsed = block_parser.parse_block(_block("1,3,a\n0,,b\n"), CSV)
    assert [k.codes.dtype for k in parsed.fields] == [np.uint8, np.uint8]



@pytest.mark.parametrize("block_bytes", [1, 4, 9, 1 << 20])
def test_file_slices_hold_the_lines_of_iter_blocks(tmp_path, block_bytes):
    def lines(blocks) -> list[tuple[int, bytes]]:
        out = []
        for block in blocks:
            block = block.read()
            rows = block.data.split(b"\n")[:-1]
            assert len(rows) == block.n_lines
            out += [(block.first_line + i, row) for i, row in enumerate(rows)]
        return out

    texts = {
        "plain": b"h\na\nbb\n\nccc\n",
        "no_last_newline": b"h\na\n" + b"b" * 30 + b"\nc",
        "bom_crlf": raw_input.UTF8_BOM + b"h\r\na\r\nb\n",
        "header_only": b"header",
        "empty": b"",
        "long_lines": b"head\n" + b"\n".join(b"x" * k for k in (1, 7, 30, 2, 70000, 3)) + b"\n",
        "bom_mid_file": b"a\n" * 5 + raw_input.UTF8_BOM + b"b\n" + b"c\n" * 5,
    }
    for name, text in texts.items():
        path = tmp_path / name
        path.write_bytes(text)
        for skip in (0, 1):
            args = dict(skip_lines=skip, block_bytes=block_bytes)
            sources = list(raw_input.iter_block_sources(str(path), **args))
            assert all(isinstance(s, raw_input.FileSlice) for s in sources)
            assert lines(sources) == lines(raw_input.iter_blocks(str(path), **args)), name
            # The same cuts, not only the same lines: parsing depends on them (a BOM counts
            # only at a block's start).
            assert [(b.first_line, b.data) for b in map(raw_input.FileSlice.read, sources)] == [
                (b.first_line, b.data) for b in raw_input.iter_blocks(str(path), **args)], name
    gz = tmp_path / "gz"
    gz.write_bytes(gzip.compress(texts["plain"]))
    sources = list(raw_input.iter_block_sources(str(gz), block_bytes=block_bytes))
    assert all(isinstance(s, RawBlock) for s in sources)
    assert lines(sources) == lines(raw_input.iter_blocks(str(gz), block_bytes=block_bytes))


def test_a_file_truncated_while_it_is_cut_into_blocks_is_a_data_error(tmp_path):
    """The main process memory-maps a plain input to find its lines: touching pages past a
    truncated end would kill it with SIGBUS, so a truncation stops it with DataError (run in a
    child process, which the signal would kill, not pytest)."""
    path = tmp_path / "in.txt"
    path.write_bytes((b"x" * 99 + b"\n") * 20000)
    code = (
        "import os, sys\n"
        "from optfusion_tf.data import raw_input\n"
        "from optfusion_tf.data.errors import DataError\n"
        f"blocks = raw_input.iter_block_sources({str(path)!r}, block_bytes=1 << 16)\n"
        "next(blocks)\n"
        f"os.truncate({str(path)!r}, 100)\n"
        "try:\n"
        "    list(blocks)\n"
        "except DataError as e:\n"
        "    print('DataError:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, (done.returncode, done.stderr[-1000:])
    assert "the file changed while it was being read" in done.stdout
