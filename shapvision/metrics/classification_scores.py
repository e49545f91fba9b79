"""Classification scores of predicted classes, each dataset index counted once (Salvage Table 2).

``accuracy`` always; with a ``positive_class`` (binary tasks: MURA's abnormal studies) also precision,
recall, F1 and the Matthews correlation, from the confusion counts of the positive class. Every
column is a ratio of sums over the images, so the bootstrap resamples images and recomputes it (the
tests check the point values against torchmetrics' and scikit-learn's definitions).
"""

import torch

from shapvision.metrics.per_image import PerImageMetric

BINARY_COLUMNS = ("accuracy", "precision", "recall", "f1", "mcc")


def ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 0 where the denominator is 0 (torchmetrics' and sklearn's convention)."""
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), 0.0)


class ClassificationScores(PerImageMetric):
    fields = {"predicted": 0, "label": 0}
    columns = ("accuracy",)
    higher_is_better = {column: True for column in BINARY_COLUMNS}

    def update(self, keys: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> None:
        self.record(keys, predicted=scores.argmax(-1), label=labels)

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        correct = (values["predicted"] == values["label"]).double()
        return {"accuracy": (weights @ correct) / weights.sum(1)}


class BinaryClassificationScores(ClassificationScores):
    """The scores of class 1 (the positive class) against every other."""

    columns = BINARY_COLUMNS

    @classmethod
    def aggregate(cls, weights, values) -> dict:
        predicted, label = values["predicted"] == 1, values["label"] == 1
        tp = weights @ (predicted & label).double()
        fp = weights @ (predicted & ~label).double()
        fn = weights @ (~predicted & label).double()
        tn = weights @ (~predicted & ~label).double()
        precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
        mcc = ratio(tp * tn - fp * fn, ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).sqrt())
        return {
            "accuracy": (tp + tn) / (tp + tn + fp + fn),
            "precision": precision,
            "recall": recall,
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "mcc": mcc,
        }
