"""The options every preprocessing format shares (the CLI flags of the same names)."""

from __future__ import annotations

import dataclasses
from typing import Any

from optfusion_tf.data import split
from optfusion_tf.data.bad_rows import ON_BAD_ROW
from optfusion_tf.data.raw_input import DEFAULT_BLOCK_BYTES
from optfusion_tf.data.tfrecord_writer import COMPRESSIONS
from optfusion_tf.data.worker_pool import default_workers

VOCAB_SCOPES = ("train", "all")


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    """Options shared by every format (the CLI flags of the same names).

    Attributes:
        threshold: count a categorical value needs in the vocabulary scope for its own id.
        ratio: train/validation/test fractions.
        seed: seed of the split assignment.
        vocab_scope: "train" (count the training split only) or "all" (the whole file, as the
            reference does).
        compression: "none" or "gzip" for the TFRecord shards.
        on_bad_row: "skip" (count and drop) or "error" (stop at the first one).
        overwrite: replace an existing output directory.
        records_per_shard: records per TFRecord file.
        log_every: progress is logged every this many input lines.
        block_bytes: bytes of raw input parsed at a time.
        workers: worker processes for parsing and encoding (0: all in this process);
            the output does not depend on it.
    """

    threshold: int = 2
    ratio: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 2022
    vocab_scope: str = "train"
    compression: str = "none"
    on_bad_row: str = "skip"
    overwrite: bool = False
    records_per_shard: int = 1_000_000
    log_every: int = 1_000_000
    block_bytes: int = DEFAULT_BLOCK_BYTES
    workers: int = dataclasses.field(default_factory=default_workers)

    def recorded(self) -> dict[str, Any]:
        """What stats.json records of these options (DatasetStats fields of the same names)."""
        kept = ("compression", "threshold", "seed", "vocab_scope")
        return {**{name: getattr(self, name) for name in kept}, "ratio": list(self.ratio)}

    def __post_init__(self) -> None:
        split.parse_ratio(self.ratio)
        choices = {
            "vocab_scope": VOCAB_SCOPES,
            "compression": COMPRESSIONS,
            "on_bad_row": ON_BAD_ROW,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"--{name} must be one of {allowed}. Received: {getattr(self, name)!r}"
                )
        for name in ("threshold", "workers", "records_per_shard", "log_every", "block_bytes"):
            if getattr(self, name) < (0 if name in ("threshold", "workers") else 1):
                raise ValueError(f"--{name} is out of range. Received: {getattr(self, name)}")
