"""The options of --runner=beam (the --beam_* flags); importing this does not import Beam."""

from __future__ import annotations

import dataclasses
from typing import Any

DEFAULT_RANGE_BYTES = 64 << 20
BEAM_RUNNERS = ("DirectRunner", "PrismRunner", "DataflowRunner", "FlinkRunner", "SparkRunner")


@dataclasses.dataclass(frozen=True)
class BeamOptions:
    """How the Beam pipelines run (the --beam_* flags).

    Attributes:
        runner: a Beam runner name (BEAM_RUNNERS).
        pipeline_args: further Beam pipeline options, e.g. ("--project=p", "--region=r").
        range_bytes: bytes of a plain input file one worker reads at a time.
        workers: DirectRunner's parallelism (processes; 0 or 1: one thread in this process).
    """

    runner: str = "DirectRunner"
    pipeline_args: tuple[str, ...] = ()
    range_bytes: int = DEFAULT_RANGE_BYTES
    workers: int = 1

    def __post_init__(self) -> None:
        if self.runner not in BEAM_RUNNERS:
            raise ValueError(
                f"--beam_runner must be one of {BEAM_RUNNERS}. Received: {self.runner!r}"
            )
        if self.range_bytes < 1:
            raise ValueError(f"range_bytes must be >= 1. Received: {self.range_bytes}")

    def pipeline_options(self) -> Any:
        """Beam's PipelineOptions: the runner, `pipeline_args`, and for DirectRunner
        `workers` processes unless the arguments say otherwise."""
        from apache_beam.options.pipeline_options import PipelineOptions

        given = {a.split("=", 1)[0].lstrip("-") for a in self.pipeline_args}
        extra: dict[str, Any] = {"runner": self.runner}
        if "default_sdk_harness_log_level" not in given:  # the workers' INFO chatter
            extra["default_sdk_harness_log_level"] = "WARNING"
        if self.runner == "DirectRunner":
            if "direct_num_workers" not in given:
                extra["direct_num_workers"] = max(self.workers, 1)
            if "direct_running_mode" not in given:
                extra["direct_running_mode"] = (
                    "multi_processing" if self.workers > 1 else "in_memory"
                )
        return PipelineOptions(flags=list(self.pipeline_args), **extra)
