"""Ablation reports: results.json -> report.md, self-contained report.html and plots/*.png."""

from .load import ReportError
from .report import write_report
from .stats import PairedDiff, Summary, paired_diff_ci, summarize

__all__ = ["PairedDiff", "ReportError", "Summary", "paired_diff_ci", "summarize", "write_report"]
