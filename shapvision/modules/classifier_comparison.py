"""Salvage Table 2: the classifier, and each trained explainer used as a classifier, on one test split.

``shapvision test`` with this module: ``checkpoint`` is the classifier; ``explainers`` ``{row:
checkpoint}`` are explainers of a surrogate of it (ViT-Shapley's FastSHAP explainer, Salvage's), each
scored by :meth:`~shapvision.modules.Explainer.class_scores`. Every row gets the accuracy on the
labelled test images; with ``binary`` (a two-class task: MURA, class 1 = abnormal) also precision,
recall, F1 and MCC of class 1, as the poster reports MURA. Each dataset index is counted
once (:mod:`shapvision.metrics.classification_scores`), so DDP gives one process's table. The table
(a row per model, bootstrap bounds per cell) goes to the trainer's result callbacks like any
evaluation's: ``evaluation.csv / .md / .json``.
"""

import torch

from shapvision.metrics.classification_scores import (
    BinaryClassificationScores,
    ClassificationScores,
)
from shapvision.metrics.table_cells import metric_cells
from shapvision.models.capabilities import ImageTextModel
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import load_module
from shapvision.modules.evaluation_core import EvaluationResult, hand_to_result_callbacks
from shapvision.modules.explainer import Explainer

CHECKPOINT_OPTION = "model.init_args.checkpoint"


class ClassifierComparison(ShapleyModule):
    def __init__(
        self,
        checkpoint: str,
        explainers: dict[str, str] | None = None,
        binary: bool = False,
        num_classes: int | None = None,
        img_size: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        classifier = load_module(
            checkpoint,
            CHECKPOINT_OPTION,
            lambda cls: not issubclass(cls, (Explainer, ImageTextModel)),
            "a classifier checkpoint (Classifier, Surrogate, SVOClassifier)",
        ).requires_grad_(False)
        self.models = torch.nn.ModuleDict({"classifier": classifier})
        for row, path in (explainers or {}).items():
            option = f"model.init_args.explainers.{row}"
            explainer = load_module(
                path, option, lambda cls: issubclass(cls, Explainer), "an Explainer checkpoint"
            )
            if explainer.hparams.num_classes != classifier.hparams.num_classes:
                raise ValueError(
                    f"{option} explains {explainer.hparams.num_classes} classes, but {CHECKPOINT_OPTION} "
                    f"classifies {classifier.hparams.num_classes}: both must come from one pipeline"
                )
            self.models[row] = explainer.requires_grad_(False)
        if num_classes is not None and classifier.hparams.num_classes != num_classes:
            raise ValueError(
                f"{CHECKPOINT_OPTION} was trained with num_classes={classifier.hparams.num_classes}, but the "
                f"data has {num_classes} classes; evaluate on the dataset the checkpoint was trained on"
            )
        if img_size is not None and classifier.hparams.img_size != img_size:
            raise ValueError(
                f"{CHECKPOINT_OPTION} was trained at img_size={classifier.hparams.img_size}, but the data gives "
                f"{img_size}; set data.init_args.img_size to match"
            )
        if binary and classifier.hparams.num_classes != 2:
            raise ValueError(
                f"model.init_args.binary scores class 1 against class 0, but {CHECKPOINT_OPTION} has "
                f"{classifier.hparams.num_classes} classes; set binary: false"
            )
        scores = BinaryClassificationScores if binary else ClassificationScores
        self.scores = torch.nn.ModuleDict({row: scores() for row in self.models})

    def configure_optimizers(self):
        raise RuntimeError("ClassifierComparison is not trained: run `shapvision test` with it")

    def scores_of(self, row: str, images: torch.Tensor) -> torch.Tensor:
        model = self.models[row]
        return model.class_scores(images) if isinstance(model, Explainer) else model(images)

    def test_step(self, batch, batch_idx):
        if batch is None:
            return
        if "label" not in batch:
            raise ValueError(
                "ClassifierComparison scores predictions against labels: the test split has none"
            )
        with torch.no_grad():
            for row in self.models:
                self.scores[row].update(
                    batch["index"], self.scores_of(row, batch["image"]), batch["label"]
                )

    def on_test_epoch_end(self) -> None:
        table = []
        for row, metric in self.scores.items():
            values = metric.compute()
            cells = {"method": row, **metric_cells(metric, values)}
            for column in metric.columns:
                self.log(f"test/{row}/{column}", cells[column])
            table.append(cells)
            metric.reset()
        result = EvaluationResult(
            checkpoint=self.hparams.checkpoint, table=table, per_image={}, examples=[]
        )
        hand_to_result_callbacks(self, result)
