"""The error the export raises for an unusable run directory, dataset or export directory."""

from __future__ import annotations


class ExportError(ValueError):
    """The export cannot proceed; the message names the file or flag and what was expected."""
