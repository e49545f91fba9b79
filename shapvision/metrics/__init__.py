"""Evaluation metrics as torchmetrics classes (DDP sync by construction)."""

from shapvision.metrics.correlation import pearson_rows, spearman_rows
from shapvision.metrics.explanation_batch import ExplanationBatch, RetrievalContext
from shapvision.metrics.masked_agreement import MaskedAgreementByFraction
from shapvision.metrics.per_image import PerImageMetric
from shapvision.metrics.registry import METRICS, create_metric, needs, update_metric
from shapvision.metrics.shapley_accuracy import ShapleyAccuracy

__all__ = [
    "METRICS",
    "ExplanationBatch",
    "RetrievalContext",
    "needs",
    "create_metric",
    "update_metric",
    "PerImageMetric",
    "MaskedAgreementByFraction",
    "ShapleyAccuracy",
    "pearson_rows",
    "spearman_rows",
]
