"""Artefacts of runs as callbacks (evaluation tables, heatmap grids, per-image attributions) and
SLURM preemption."""

from shapvision.callbacks.attribution_writer import AttributionWriter
from shapvision.callbacks.evaluation_table import EvaluationTableWriter
from shapvision.callbacks.heatmap_grid import HeatmapGridWriter
from shapvision.callbacks.slurm_requeue import SlurmRequeue

__all__ = [
    "AttributionWriter",
    "EvaluationTableWriter",
    "HeatmapGridWriter",
    "SlurmRequeue",
]
