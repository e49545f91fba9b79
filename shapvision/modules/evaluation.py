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

At the end of ``test`` the module holds ``table`` (a row per method, a column per metric output,
plus seconds per image) and ``examples`` (heatmaps of the first ``heatmap_images`` test images);
the callbacks in :mod:`shapvision.callbacks` write them (CSV + Markdown, PNG + TensorBoard), and
per-image attributions when asked. Bad names, a method that does not fit the backbone, a checkpoint
of the wrong kind or shape: an error at construction, before any compute.
"""

import time
from typing import Literal

import torch
import torch.distributed as dist

from shapvision.attribution import ExplainedModel, ExplainerValues, create_method
from shapvision.metrics import NEEDS_MASKS, ExplanationBatch, create_metric, update_metric
from shapvision.metrics.table_cells import median_ranks, metric_cells
from shapvision.metrics.top1_accuracy import Top1Accuracy
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import load_module

CHECKPOINT_OPTION = "model.init_args.checkpoint"
DEFAULT_METHODS = ("random", "rollout", "gradcam", "integrated_gradients", "leave_one_out")
DEFAULT_METRICS = ("insertion_deletion_patches", "insertion_deletion_pixels", "aopc_lodds", "saco")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gather_examples(examples: list[dict]) -> list[dict]:
    """Heatmap examples from every rank, one per ``index``, in index order (rank 0 writes them)."""
    if not (dist.is_available() and dist.is_initialized()):
        return sorted(examples, key=lambda e: e["index"])
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, examples)
    unique = {e["index"]: e for part in gathered for e in part}
    return [unique[i] for i in sorted(unique)]


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
        if type(module).__name__ == "Explainer":
            explainers = {"explainer": checkpoint, **explainers}
            link = module.hparams.link  # the game the explainer was trained on is the one scored
            module = module.surrogate
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
                path, f"model.init_args.explainers.{name}", ("Explainer",)
            ).requires_grad_(False)
            if explainer.hparams.link != self.model.link.name:
                raise ValueError(
                    f"model.init_args.explainers.{name} was trained on the {explainer.hparams.link} game, but "
                    f"the evaluation scores the {self.model.link.name} game of {CHECKPOINT_OPTION}: "
                    "compare explainers of one link"
                )
            self.explainer_modules[name] = explainer
            self.methods[name] = ExplainerValues(self.model, explainer)
        if not self.methods:
            raise ValueError(
                "model.init_args.methods and model.init_args.explainers are both empty: nothing to evaluate"
            )
        metric_options = metric_options or {}
        self.metric_names = list(metrics)
        self.scores = torch.nn.ModuleDict(
            {
                method: torch.nn.ModuleDict(
                    {
                        m: create_metric(m, self.num_patches, **metric_options.get(m, {}))
                        for m in metrics
                    }
                )
                for method in self.methods
            }
        )
        self.accuracy = Top1Accuracy(resamples=0)
        self.register_buffer(
            "seconds", torch.zeros(len(self.methods), dtype=torch.float64), persistent=False
        )
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.float64), persistent=False)
        self.table: list[dict] = []
        self.examples: list[dict] = []
        self.per_image: dict[str, dict[str, dict]] = {}

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
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "gradient-based methods need autograd during test: set trainer.inference_mode: false "
                "(experiments/*/evaluation*.yaml do)"
            )
        datamodule = getattr(self.trainer, "datamodule", None)
        needs = [m for m in self.metric_names if m in NEEDS_MASKS]
        if needs and not getattr(datamodule, "has_masks", False):
            raise ValueError(
                f"metrics {needs} need ground-truth masks, and {type(datamodule).__name__} yields none; "
                "use ImageNetSegmentationDataModule, ImageFolderDataModule with mask_root, "
                "or DigitsDataModule with ink_masks: true"
            )
        self.table, self.examples = [], []

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
        attributions = {}
        for j, (name, method) in enumerate(self.methods.items()):
            synchronize(images.device)
            start = time.perf_counter()
            attribution = method.explain(images, target, index)
            synchronize(images.device)
            self.seconds[j] += time.perf_counter() - start
            attributions[name] = attribution
            for metric in self.scores[name].values():
                update_metric(metric, explanation_batch, attribution, method)
        self.images_seen += images.shape[0]
        self._keep_examples(images, target, index, attributions)
        return {
            "index": index,
            "target": target,
            "attributions": {k: a.patches for k, a in attributions.items()},
        }

    def _keep_examples(self, images, target, index, attributions) -> None:
        size = tuple(images.shape[-2:])
        for i in (index < self.hparams.heatmap_images).nonzero().flatten().tolist():
            self.examples.append(
                {
                    "index": int(index[i]),
                    "image": images[i].detach().cpu(),
                    "target": int(target[i]),
                    "maps": {
                        k: a.pixel_map(self.grid_size, size)[i].detach().cpu()
                        for k, a in attributions.items()
                    },
                }
            )

    def on_test_epoch_end(self) -> None:
        seconds = self.all_gather(self.seconds).reshape(-1, len(self.methods)).sum(0)
        images = self.all_gather(self.images_seen).sum().clamp_min(1)
        accuracy = (
            float(self.accuracy.compute()["accuracy"]) if self.accuracy.update_called else None
        )
        self.accuracy.reset()
        if accuracy is not None:
            self.log("test/acc", accuracy)
        self.table, self.per_image = score_table(
            self, self.methods, seconds / images, "ms_per_image"
        )
        self.test_accuracy = accuracy
        self.examples = gather_examples(self.examples)


def score_table(module, methods: dict, seconds_per_item, time_column: str, extra_metrics=None):
    """Rows of the evaluation table (a row per method: cells with bootstrap bounds, the time per item,
    the median rank across metrics) and the per-image values ``{method: {metric: values}}``; every
    metric is logged as ``test/<method>/<column>`` and reset."""
    table, per_image, directions = [], {}, {}
    for j, (name, method) in enumerate(methods.items()):
        row = {"method": name, "library": method.library}
        per_image[name] = {}
        metrics = dict(module.scores[name].items())
        metrics.update((extra_metrics or {}).get(name, {}))
        for metric_name, metric in metrics.items():
            values = metric.compute()
            row.update(metric_cells(metric, values))
            for column in metric.columns:
                module.log(f"test/{name}/{column}", row[column])
            directions.update(getattr(metric, "higher_is_better", {}))
            if "per_image" in values:
                per_image[name][metric_name] = {
                    k: v.detach().cpu() for k, v in values["per_image"].items()
                }
            metric.reset()
        row[time_column] = 1000 * float(seconds_per_item[j])
        table.append(row)
    for row, rank in zip(table, median_ranks(table, directions), strict=True):
        row["median_rank"] = rank
    return table, per_image
