"""Artefacts of runs as callbacks: evaluation tables, heatmap grids, per-image attributions."""

from shapvision.callbacks.attribution_writer import AttributionWriter
from shapvision.callbacks.evaluation_table import EvaluationTableWriter, markdown_table
from shapvision.callbacks.heatmap_grid import HeatmapGridWriter

__all__ = ["AttributionWriter", "EvaluationTableWriter", "HeatmapGridWriter", "markdown_table"]
