"""Evaluation metrics as torchmetrics classes (DDP sync by construction)."""

from shapvision.metrics.correlation import pearson_rows, spearman_rows
from shapvision.metrics.insertion_deletion import InsertionDeletion, insertion_deletion_curves
from shapvision.metrics.masked_agreement import MaskedAgreementByFraction
from shapvision.metrics.shapley_accuracy import ShapleyAccuracy

__all__ = [
    "InsertionDeletion",
    "MaskedAgreementByFraction",
    "ShapleyAccuracy",
    "insertion_deletion_curves",
    "pearson_rows",
    "spearman_rows",
]
