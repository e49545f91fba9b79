"""What image and image-text evaluation share: the methods x metrics grid, timing with the device
synchronised, heatmap examples, and the :class:`EvaluationResult` that callbacks receive.

A module (``Evaluation``, ``ImageTextEvaluation``) decides what a batch is (classes or captions) and
builds its :class:`ExplanationBatch`; the core explains it with every method, times each, updates
every metric the batch is for, and at the end of the epoch turns the synced metrics into the table
(a row per method, bootstrap bounds per cell, time per item, median rank) and hands the result to
every :class:`EvaluationResultCallback` of the trainer.
"""

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from shapvision.metrics import METRICS, ExplanationBatch, create_metric, needs, update_metric
from shapvision.metrics.table_cells import median_ranks, metric_cells


@dataclass
class EvaluationResult:
    """An evaluation run's outcome: ``table`` (a row per method, a column per metric output with its
    ``_ci_low`` / ``_ci_high`` bounds), ``per_image`` (``{method: {metric: values}}``), the heatmap
    ``examples`` of the first items, the model's own ``accuracy`` / ``model_metrics`` (retrieval)."""

    checkpoint: str
    table: list[dict]
    per_image: dict
    examples: list[dict]
    accuracy: float | None = None
    model_metrics: dict[str, float] = field(default_factory=dict)


class EvaluationResultCallback(Callback):
    """A callback that writes an evaluation's result: ``on_evaluation_result`` is called on every rank
    (finding the run directory is a collective under DDP) at the end of the test epoch."""

    def on_evaluation_result(self, trainer, pl_module, result: EvaluationResult) -> None:
        raise NotImplementedError


def hand_to_result_callbacks(module, result: EvaluationResult) -> None:
    """Give ``result`` to every :class:`EvaluationResultCallback` of the module's trainer."""
    for callback in module.trainer.callbacks:
        if isinstance(callback, EvaluationResultCallback):
            callback.on_evaluation_result(module.trainer, module, result)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gather_examples(examples: list[dict]) -> list[dict]:
    """Heatmap examples from every rank, one per ``key``, in key order (rank 0 writes them)."""
    if dist.is_available() and dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, examples)
        examples = [e for part in gathered for e in part]
    unique = {e["key"]: e for e in examples}
    return [unique[k] for k in sorted(unique)]


class EvaluationCore(torch.nn.Module):
    """``methods`` ``{row: AttributionMethod}`` scored by ``metrics`` (registry names, options per
    name in ``metric_options``); ``unit`` names the time column (``ms_per_<unit>``)."""

    def __init__(
        self,
        methods: dict,
        metrics: list[str],
        metric_options: dict[str, dict] | None,
        num_patches: int,
        grid_size: tuple[int, int],
        heatmap_images: int,
        unit: str,
    ):
        super().__init__()
        metric_options = metric_options or {}
        unknown = set(metric_options) - set(metrics)
        if unknown:
            raise ValueError(
                f"model.init_args.metric_options names metrics not in model.init_args.metrics: {sorted(unknown)}"
            )
        self.methods = methods
        self.metric_names = list(metrics)
        self.scores = torch.nn.ModuleDict(
            {
                method: torch.nn.ModuleDict(
                    {m: create_metric(m, num_patches, **metric_options.get(m, {})) for m in metrics}
                )
                for method in methods
            }
        )
        self.grid_size, self.heatmap_images, self.unit = grid_size, heatmap_images, unit
        self.register_buffer(
            "seconds", torch.zeros(len(methods), dtype=torch.float64), persistent=False
        )
        self.register_buffer("items_seen", torch.zeros((), dtype=torch.float64), persistent=False)
        self.examples: list[dict] = []

    def metrics_needing(self, requirement: str) -> list[str]:
        """The metric names that declare ``needs_<requirement>``."""
        return [name for name in self.metric_names if needs(METRICS[name], requirement)]

    @property
    def per_caption(self) -> bool:
        """Whether any metric scores every caption of an image (image-text evaluation)."""
        return any(getattr(METRICS[name], "per_caption", False) for name in self.metric_names)

    def start(self, datamodule, masks: str) -> None:
        """Before the first batch: autograd must be on, and metrics that need ground-truth masks need
        a data module that has them (``masks`` says which provide them, for the error)."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "gradient-based methods need autograd during test: set trainer.inference_mode: false "
                "(experiments/*/evaluation*.yaml do)"
            )
        missing = self.metrics_needing("masks")
        if missing and not getattr(datamodule, "has_masks", False):
            raise ValueError(
                f"metrics {missing} need {masks}, and {type(datamodule).__name__} yields none; "
                "use such data or drop them from model.init_args.metrics"
            )
        self.examples = []

    def score(self, batch: ExplanationBatch, every_metric: bool = True) -> dict:
        """Every method's attribution of ``batch``, timed, fed to the metrics; with ``every_metric``
        false only to those that score every caption (``per_caption``)."""
        images, attributions = batch.images, {}
        for j, (name, method) in enumerate(self.methods.items()):
            synchronize(images.device)
            start = time.perf_counter()
            attribution = method.explain(images, batch.target, batch.keys)
            synchronize(images.device)
            self.seconds[j] += time.perf_counter() - start
            attributions[name] = attribution
            for metric in self.scores[name].values():
                if every_metric or getattr(metric, "per_caption", False):
                    update_metric(metric, batch, attribution, method)
        self.items_seen += images.shape[0]
        return attributions

    def keep_examples(self, batch: ExplanationBatch, attributions: dict, titles=None, slot=0):
        """Heatmaps of the items whose dataset index is below ``heatmap_images`` (``titles``: one
        per item, e.g. the caption), keyed by (index, slot)."""
        size = tuple(batch.images.shape[-2:])
        for i in (batch.index < self.heatmap_images).nonzero().flatten().tolist():
            example = {
                "key": (int(batch.index[i]), slot),
                "index": int(batch.index[i]),
                "image": batch.images[i].detach().cpu(),
                "target": int(batch.target[i]),
                "maps": {
                    k: a.pixel_map(self.grid_size, size)[i].detach().cpu()
                    for k, a in attributions.items()
                },
            }
            if titles is not None:
                example["title"] = titles[i]
            self.examples.append(example)

    def finish(
        self, module, checkpoint: str, accuracy=None, model_metrics=None
    ) -> EvaluationResult:
        """Synced table, per-image values and examples; each cell logged as ``test/<method>/<column>``
        and every metric reset; the result handed to the trainer's result callbacks."""
        # every rank gathers, also with no method rows (a retrieval-only image-text evaluation)
        seconds = module.all_gather(self.seconds).reshape(-1, max(len(self.methods), 1)).sum(0)
        items = module.all_gather(self.items_seen).sum().clamp_min(1)
        table, per_image = score_table(
            module, self.methods, self.scores, seconds / items, f"ms_per_{self.unit}"
        )
        self.seconds.zero_()
        self.items_seen.zero_()
        result = EvaluationResult(
            checkpoint=checkpoint,
            table=table,
            per_image=per_image,
            examples=gather_examples(self.examples),
            accuracy=accuracy,
            model_metrics=dict(model_metrics or {}),
        )
        hand_to_result_callbacks(module, result)
        return result


def score_table(module, methods: dict, scores, seconds_per_item, time_column: str):
    """Rows of the evaluation table (a row per method: cells with bootstrap bounds, the time per item,
    the median rank across metrics) and the per-image values ``{method: {metric: values}}``; every
    metric is logged as ``test/<method>/<column>`` and reset."""
    table, per_image, directions = [], {}, {}
    for j, (name, metrics) in enumerate(scores.items()):
        row = {"method": name, "library": methods[name].library}
        per_image[name] = {}
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
