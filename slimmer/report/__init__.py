"""Reports: what a run removed and saved (the model and its JSON schema), its human text
form, and the summaries built from a plan and the built layers."""

from __future__ import annotations

from slimmer.report.model import Attachment, ImageReport, LayerReport, Report

__all__ = ["Attachment", "ImageReport", "LayerReport", "Report"]
