"""Pass 1 -> pass 2 hand-over: every kept row's value codes, label and split, on disk.

Pass 1 parses the raw text once and appends, per block, as consecutive .npy records: the rows'
codes [R, F] (row r's key of field j is the block's distinct key codes[r, j] of that field; uint8,
uint16 or int32, the narrowest that holds them), the provisional (first-seen) ids of each field's
distinct keys of the block (int32, fields concatenated) and how many each field has (int64 [F]),
float32 [R] labels and uint8 [R] splits. Pass 2 reads each block back by its offset (in any
process), so it never re-parses text: it only remaps the distinct keys' ids and takes the rows'
(`global_ids`), then encodes. The file lives in the temporary output directory and is removed
before the rename; it takes at most 2 * F + 5 bytes per row for blocks of up to 65,536 rows,
plus 4 bytes per distinct key of a block (Criteo: about 90 B, less than the raw text's ~240 B).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CachedBlock:
    """One block of the cache (see the module docstring).

    Attributes:
        codes: [R, F], the rows' codes into their block's distinct keys, per field.
        key_ids: int32 [sum of key_counts], provisional ids of the distinct keys, by field.
        key_counts: int64 [F], distinct keys of each field in the block.
        labels: float32 [R].
        splits: uint8 [R].
    """

    codes: np.ndarray
    key_ids: np.ndarray
    key_counts: np.ndarray
    labels: np.ndarray
    splits: np.ndarray

    def global_ids(self, remap: np.ndarray, bases: np.ndarray) -> np.ndarray:
        """int64 [R, F]: the rows' global ids, given the provisional -> global id table `remap`
        (fields concatenated) and each field's start in it, `bases` int64 [F]."""
        table = remap[np.repeat(bases, self.key_counts) + self.key_ids]
        starts = np.cumsum(self.key_counts) - self.key_counts
        return table[self.codes + starts]


class IdCacheWriter:
    """Appends blocks to the cache file at `path`; `offsets` lists where each block starts."""

    def __init__(self, path: str):
        self.path = path
        self.offsets: list[int] = []
        self._file = open(path, "wb")

    def write(
        self, codes: np.ndarray, key_ids: list[np.ndarray], labels: np.ndarray, splits: np.ndarray
    ) -> None:
        """codes [R, F], per field the int32 ids of its distinct keys, labels float32 [R],
        splits uint8 [R]."""
        self.offsets.append(self._file.tell())
        counts = np.array([len(k) for k in key_ids], np.int64)
        for a in (codes, np.concatenate(key_ids), counts, labels, splits):
            np.save(self._file, a, allow_pickle=False)

    def close(self) -> None:
        self._file.close()


def read_id_block(path: str, offset: int) -> CachedBlock:
    """The block written at `offset`."""
    with open(path, "rb") as f:
        f.seek(offset)
        return CachedBlock(*(np.load(f, allow_pickle=False) for _ in range(5)))
