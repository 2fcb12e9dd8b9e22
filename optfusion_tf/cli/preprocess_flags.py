"""absl flags and the shared main of the preprocessing CLIs (criteo2TF, avazu2TF, kdd2TF,
csv2TF), and the entry points of the built-in formats: `criteo2tf()`, `avazu2tf()`, `kdd2tf()`.

The flags are the options of `optfusion_tf.data.preprocess.PreprocessOptions`; csv2TF adds its
own (see `optfusion_tf.cli.csv2tf`, its entry point). They are defined by `define_flags()` when
a CLI starts, not at import, so importing these modules next to other flag-defining modules
never clashes.

Exit status: 0 on success, 1 for unusable input or output (the message names the file, line
and what was expected), 130 on Ctrl-C, 143 on SIGTERM; an interrupted run leaves no output
directory behind.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import signal
import sys
from typing import Any, Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from optfusion_tf.cli.flag_help import show_flags_in_help  # noqa: E402
from optfusion_tf.data.bad_rows import ON_BAD_ROW  # noqa: E402
from optfusion_tf.data.beam import preprocess_beam  # noqa: E402
from optfusion_tf.data.beam.options import (  # noqa: E402
    BEAM_RUNNERS,
    DEFAULT_RANGE_BYTES,
    BeamOptions,
)
from optfusion_tf.data.errors import DataError  # noqa: E402
from optfusion_tf.data.options import VOCAB_SCOPES, PreprocessOptions  # noqa: E402
from optfusion_tf.data.preprocess import CsvOptions, preprocess  # noqa: E402
from optfusion_tf.data.split import parse_ratio  # noqa: E402
from optfusion_tf.data.tfrecord_writer import COMPRESSIONS  # noqa: E402
from optfusion_tf.data.worker_pool import default_workers  # noqa: E402

FLAGS = flags.FLAGS
RUNNERS = ("local", "beam")
BEAM_FLAGS = ("beam_runner", "beam_option", "beam_range_mb")
# PreprocessOptions' fields that are flags of the same name (block_bytes is not a flag).
OPTION_FLAGS = tuple(
    f.name for f in dataclasses.fields(PreprocessOptions) if f.name != "block_bytes"
)


def define_flags() -> None:
    """Defines the shared preprocessing flags; a CLI's run() calls it once, before app.run."""
    flags.DEFINE_string("dataset", None, "Raw input file, plain text or gzip.")
    flags.DEFINE_string(
        "record", None, "Output dataset directory. Default: tfrecords/<name>_<threshold>."
    )
    flags.DEFINE_integer(
        "threshold",
        2,
        "Count a categorical value needs (in the vocabulary scope) for its own id.",
        lower_bound=0,
    )
    flags.DEFINE_list("ratio", ["0.8", "0.1", "0.1"], "train,validation,test fractions (sum 1).")
    flags.DEFINE_integer("seed", 2022, "Seed of the random train/validation/test split.",
                         lower_bound=0)
    flags.DEFINE_enum(
        "vocab_scope",
        "train",
        VOCAB_SCOPES,
        "Count values on the training split only, or on the whole file (the reference).",
    )
    flags.DEFINE_enum("compression", "none", COMPRESSIONS, "TFRecord compression.")
    flags.DEFINE_enum(
        "on_bad_row",
        "skip",
        ON_BAD_ROW,
        "skip: count and drop bad rows; error: stop at the first one.",
    )
    flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")
    flags.DEFINE_integer(
        "records_per_shard", 1_000_000, "Examples per TFRecord file.", lower_bound=1
    )
    flags.DEFINE_integer(
        "workers",
        default_workers(),
        "Worker processes (0: parse and encode in the main process).",
        lower_bound=0,
    )
    flags.DEFINE_integer(
        "log_every", 1_000_000, "Log progress every this many rows.", lower_bound=1
    )
    flags.DEFINE_enum(
        "runner",
        "local",
        RUNNERS,
        "local: this machine's processes; beam: Apache Beam pipelines (the beam extra), "
        "--dataset may then be a glob of local or remote files.",
    )
    flags.DEFINE_enum("beam_runner", "DirectRunner", BEAM_RUNNERS,
                      "With --runner=beam: the Beam runner.")
    flags.DEFINE_multi_string(
        "beam_option",
        [],
        "With --runner=beam: a Beam pipeline option passed through, e.g. "
        "--beam_option=--project=my-project (repeat the flag for more).",
    )
    flags.DEFINE_integer(
        "beam_range_mb",
        DEFAULT_RANGE_BYTES >> 20,
        "With --runner=beam: MiB of a plain input file one worker reads at a time.",
        lower_bound=1,
    )
    flags.mark_flag_as_required("dataset")
    flags.register_validator("ratio", checked_by(parse_ratio))
    show_flags_in_help(sys.modules[__name__])


def checked_by(check: Callable[[Any], Any]) -> Callable[[Any], bool]:
    """An absl flag validator from a function that raises ValueError with the message: a bad
    value then fails at parse time with one line (`FATAL Flags parsing error: ...`), not the
    whole --help that an app.UsageError prints."""

    def validator(value: Any) -> bool:
        try:
            check(value)
        except ValueError as e:
            raise flags.ValidationError(str(e)) from None
        return True

    return validator


def options_from_flags() -> PreprocessOptions:
    """PreprocessOptions from the parsed flags (raises app.UsageError for bad values)."""
    try:
        given = {name: FLAGS[name].value for name in OPTION_FLAGS}
        given["ratio"] = tuple(float(r) for r in given["ratio"])
        return PreprocessOptions(**given)
    except ValueError as e:
        raise app.UsageError(str(e)) from e


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so the temporary output directory is removed


def run_preprocess(kind: str, argv: Sequence[str], csv_options: CsvOptions | None = None) -> int:
    """The CLIs' main: preprocess --dataset into --record; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    signal.signal(signal.SIGTERM, _terminate)
    options = options_from_flags()
    program = os.path.basename(sys.argv[0])
    try:
        if FLAGS.runner == "beam":
            beam_options = BeamOptions(
                runner=FLAGS.beam_runner,
                pipeline_args=tuple(FLAGS.beam_option),
                range_bytes=FLAGS.beam_range_mb << 20,
                workers=options.workers,
            )
            stats = preprocess_beam(
                kind, FLAGS.dataset, FLAGS.record, options, csv_options, beam_options
            )
        else:
            given = [f"--{name}" for name in BEAM_FLAGS if FLAGS[name].present]
            if given:
                raise app.UsageError(f"{', '.join(given)}: only used with --runner=beam")
            if glob.has_magic(FLAGS.dataset) and not os.path.exists(FLAGS.dataset):
                raise app.UsageError(
                    f"--dataset={FLAGS.dataset}: a glob of several files needs --runner=beam"
                )
            stats = preprocess(kind, FLAGS.dataset, FLAGS.record, options, csv_options)
    except DataError as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted; nothing was written", file=sys.stderr)
        return 128 + signal.SIGINT
    logging.info(
        "feature_num %d, fields %d, rows %s", stats.feature_num, stats.num_fields, stats.rows
    )
    return 0


def run_for(kind: str) -> None:
    """Console entry point of the built-in format `kind` ("criteo", "avazu" or "kdd12"):
    defines the flags, parses the command line and preprocesses --dataset into --record."""
    define_flags()

    def main(argv: Sequence[str]) -> int:
        return run_preprocess(kind, argv)

    app.run(main)


def criteo2tf() -> None:
    """criteo2TF: Criteo Display Advertising Challenge train.txt -> TFRecord shards, vocab/*.tsv
    and stats.json."""
    run_for("criteo")


def avazu2tf() -> None:
    """avazu2TF: Avazu CTR train.csv (with header) -> TFRecord shards, vocab/*.tsv and
    stats.json."""
    run_for("avazu")


def kdd2tf() -> None:
    """kdd2TF: KDD Cup 2012 track 2 training.txt -> TFRecord shards, vocab/*.tsv and
    stats.json."""
    run_for("kdd12")
