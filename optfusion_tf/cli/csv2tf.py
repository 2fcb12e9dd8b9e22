"""csv2TF: any delimited click log (plain or gzip) -> TFRecord shards, vocab/*.tsv and stats.json.

Flags: those of optfusion_tf.cli.preprocess_flags, plus the columns and label rule below.
Columns are header names or 0-based indexes (without a header, fields are named column_<i>).

Example:
  csv2TF --dataset=clicks.csv.gz --label_col=clicked --categorical_cols=user,ad,site \\
      --numeric_cols=price --numeric_rule=identity --label_positive_if='>0'
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

from optfusion_tf.cli import preprocess_flags
from optfusion_tf.cli.flag_help import show_flags_in_help
from optfusion_tf.data.formats import NUMERIC_RULES, LabelRule
from optfusion_tf.data.preprocess import CsvOptions

FLAGS = flags.FLAGS


def define_csv_flags() -> None:
    """csv2TF's own flags (next to preprocess_flags.define_flags())."""
    flags.DEFINE_string("label_col", None, "Label column (name or 0-based index).")
    flags.DEFINE_list(
        "categorical_cols", [], "Categorical feature columns (names or 0-based indexes)."
    )
    flags.DEFINE_list("numeric_cols", [], "Numeric feature columns (names or 0-based indexes).")
    flags.DEFINE_enum(
        "numeric_rule",
        "log_square",
        NUMERIC_RULES,
        "log_square: Criteo's x > 2 -> floor(ln(x)^2) else int(x), every value kept; "
        "identity: the number itself, --threshold applies.",
    )
    flags.DEFINE_string(
        "delimiter", ",", r"Field separator, one character ('\t' or 'tab' for tabs)."
    )
    flags.DEFINE_bool("header", True, "Whether the first line holds column names.")
    flags.DEFINE_string(
        "label_positive_if",
        "",
        "Label binarisation, a comparison with a number such as '>0' or '>=4'. "
        "Empty: the label must be 0 or 1.",
    )
    flags.DEFINE_string(
        "name", "", "Dataset name (stats.json, default --record). Default: the input file name."
    )
    flags.mark_flag_as_required("label_col")
    flags.register_validator("delimiter", preprocess_flags.checked_by(delimiter_of))
    flags.register_validator(
        "label_positive_if",
        preprocess_flags.checked_by(lambda rule: rule and LabelRule("number", rule)),
    )
    show_flags_in_help(sys.modules[__name__])


def delimiter_of(flag: str) -> str:
    """The --delimiter character: a name of _DELIMITER_NAMES or one printable ASCII character
    other than the quote and a line break (raises ValueError)."""
    delimiter = _DELIMITER_NAMES.get(flag, flag)
    if len(delimiter) != 1 or delimiter in '"\r\n' or not (delimiter == "\t" or
                                                           " " <= delimiter <= "~"):
        raise ValueError(
            f"--delimiter must be one printable ASCII character other than '\"' (or one of "
            f"{sorted(_DELIMITER_NAMES)}). Received: {flag!r}"
        )
    return delimiter


_DELIMITER_NAMES = {
    r"\t": "\t",
    "tab": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
    "space": " ",
}


def main(argv: Sequence[str]) -> int:
    csv_options = CsvOptions(
        label_col=FLAGS.label_col,
        categorical_cols=tuple(FLAGS.categorical_cols),
        numeric_cols=tuple(FLAGS.numeric_cols),
        numeric_rule=FLAGS.numeric_rule,
        delimiter=delimiter_of(FLAGS.delimiter),
        header=FLAGS.header,
        label_positive_if=FLAGS.label_positive_if,
        name=FLAGS.name,
    )
    return preprocess_flags.run_preprocess("csv", argv, csv_options)


def run() -> None:
    """Console entry point."""
    preprocess_flags.define_flags()
    define_csv_flags()
    app.run(main)


if __name__ == "__main__":
    run()
