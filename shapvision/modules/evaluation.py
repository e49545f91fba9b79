"""Evaluation as its own module: a checkpoint, a list of methods, a list of metrics, one table.

    shapvision test --config experiments/digits/trainer.yaml --config experiments/digits/evaluation.yaml

``checkpoint`` is the model being explained and scored: a Classifier / Surrogate / SVOClassifier,
or an Explainer (then its surrogate is the model and the explainer is a row named ``explainer``).
``methods`` are names from :data:`shapvision.attribution.METHODS`, or ``row=name`` to run a method
more than once under row names (``kernelshap_256=kernelshap``, options keyed by the row name);
``explainers`` adds trained
explainers as rows ``{row name: checkpoint}`` (they must explain a game on the same patch grid and
classes). Every method explains the same class per image: the model's prediction (``target:
predicted``) or the label. ``metrics`` are names from :data:`shapvision.metrics.METRICS`, each a
torchmetrics class per method, so DDP reduces them exactly. Options per method / metric go in
``method_options`` / ``metric_options``.

The grid, timing and examples are the :class:`~shapvision.modules.evaluation_core.EvaluationCore`
shared with image-text evaluation; at the end of ``test`` its ``EvaluationResult`` (a row per method,
a column per metric output, plus ms per image; heatmaps of the first ``heatmap_images`` test images)
goes to the trainer's result callbacks (CSV + Markdown, PNG + TensorBoard), and per-image
attributions to ``AttributionWriter`` when asked. Bad names, a method that does not fit the backbone, a checkpoint
of the wrong kind or shape: an error at construction, before any compute.
"""

from typing import Literal

import torch

from shapvision.attribution import ExplainedModel, ExplainerValues, create_method
from shapvision.metrics import ExplanationBatch
from shapvision.metrics.top1_accuracy import Top1Accuracy
from shapvision.models.capabilities import ExplainsAGame
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import load_module
from shapvision.modules.evaluation_core import EvaluationCore

CHECKPOINT_OPTION = "model.init_args.checkpoint"
DEFAULT_METHODS = ("random", "rollout", "gradcam", "integrated_gradients", "leave_one_out")
DEFAULT_METRICS = ("insertion_deletion_patches", "insertion_deletion_pixels", "aopc_lodds", "saco")


class Evaluation(ShapleyModule):
    def __init__(
        self,
        checkpoint: str,
        methods: tuple[str, ...] = DEFAULT_METHODS,
        metrics: tuple[str, ...] = DEFAULT_METRICS,
        explainers: dict[str, str] | None = None,
        method_options: dict[str, dict] | None = None,
        metric_options: dict[str, dict] | None = None,
        target: Literal["predicted", "label"] = "predicted",
        num_classes: int | None = None,
        img_size: int | None = None,
        heatmap_images: int = 6,
        forward_chunk: int = 1024,
    ):
        super().__init__()
        self.save_hyperparameters()
        module = load_module(checkpoint, CHECKPOINT_OPTION)
        explainers = dict(explainers or {})
        link = "softmax"
        if isinstance(module, ExplainsAGame):
            explainers = {"explainer": checkpoint, **explainers}
            # the game the explainer was trained on is the one scored
            module, link = module.explained_game()
        self._check_data(module, num_classes, img_size)
        self.explained = module.requires_grad_(False)
        self.model = ExplainedModel(module, f"{CHECKPOINT_OPTION} {checkpoint}", link)
        self.grid_size, self.num_patches = self.model.grid_size, self.model.num_patches
        method_options = method_options or {}
        rows = dict(entry.split("=", 1) if "=" in entry else (entry, entry) for entry in methods)
        unknown = set(method_options) - set(rows)
        if unknown:
            raise ValueError(
                f"model.init_args.method_options names methods not in model.init_args.methods: {sorted(unknown)}"
            )
        self.methods = {
            row: create_method(name, self.model, **method_options.get(row, {}))
            for row, name in rows.items()
        }
        self.explainer_modules = torch.nn.ModuleDict()
        for name, path in explainers.items():
            if name in self.methods:
                raise ValueError(
                    f"model.init_args.explainers row {name!r} clashes with a method of that name"
                )
            explainer = load_module(
                path,
                f"model.init_args.explainers.{name}",
                lambda cls: issubclass(cls, ExplainsAGame),
                "an amortized explainer (Explainer)",
            ).requires_grad_(False)
            explainer_link = explainer.explained_game()[1]
            if explainer_link != self.model.link.name:
                raise ValueError(
                    f"model.init_args.explainers.{name} was trained on the {explainer_link} game, but "
                    f"the evaluation scores the {self.model.link.name} game of {CHECKPOINT_OPTION}: "
                    "compare explainers of one link"
                )
            self.explainer_modules[name] = explainer
            self.methods[name] = ExplainerValues(self.model, explainer)
        if not self.methods:
            raise ValueError(
                "model.init_args.methods and model.init_args.explainers are both empty: nothing to evaluate"
            )
        self.core = EvaluationCore(
            self.methods,
            list(metrics),
            metric_options,
            self.num_patches,
            self.grid_size,
            heatmap_images,
            "image",
        )
        self.accuracy = Top1Accuracy(resamples=0)

    @staticmethod
    def _check_data(module, num_classes, img_size) -> None:
        trained = module.hparams
        if num_classes is not None and trained.num_classes != num_classes:
            raise ValueError(
                f"{CHECKPOINT_OPTION} was trained with num_classes={trained.num_classes}, but the data has "
                f"{num_classes} classes; evaluate on the dataset the checkpoint was trained on"
            )
        if img_size is not None and trained.img_size != img_size:
            raise ValueError(
                f"{CHECKPOINT_OPTION} was trained at img_size={trained.img_size}, but the data gives {img_size}; "
                "set data.init_args.img_size to match"
            )

    def configure_optimizers(self):
        raise RuntimeError("Evaluation is not trained: run `shapvision test` (or validate) with it")

    def on_test_start(self) -> None:
        self.core.start(
            self.trainer.datamodule,
            "ground-truth masks (ImageNetSegmentationDataModule, ImageFolderDataModule with "
            "mask_root, or DigitsDataModule with ink_masks: true)",
        )
        retrieval = self.core.metrics_needing("retrieval")
        if retrieval:
            raise ValueError(
                f"metrics {retrieval} score image-text retrieval: evaluate an image-text checkpoint "
                "with ImageTextEvaluation (shapvision-clip test)"
            )

    def test_step(self, batch, batch_idx):
        if batch is None:
            return None
        images, index = batch["image"], batch["index"]
        labels = batch.get("label")
        with torch.no_grad():
            logits = self.model.logits(images)
        if labels is not None:
            self.accuracy.update(index, logits, labels)
        if self.hparams.target == "label":
            if labels is None:
                raise ValueError("model.init_args.target=label, but this data has no labels")
            target = labels
        else:
            target = logits.argmax(-1)
        explanation_batch = ExplanationBatch(
            images=images,
            target=target,
            index=index,
            model=self.model,
            labels=labels,
            gt_mask=batch.get("mask"),
            logits=logits,
            chunk=self.hparams.forward_chunk,
        )
        attributions = self.core.score(explanation_batch)
        self.core.keep_examples(explanation_batch, attributions)
        return {
            "index": index,
            "target": target,
            "attributions": {k: a.patches for k, a in attributions.items()},
        }

    def on_test_epoch_end(self) -> None:
        accuracy = None
        if self.accuracy.update_called:
            accuracy = float(self.accuracy.compute()["accuracy"])
            self.log("test/acc", accuracy)
        self.accuracy.reset()
        self.result = self.core.finish(self, self.hparams.checkpoint, accuracy)
