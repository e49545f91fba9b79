"""Evaluation of an image-text model (SVO-CLIP or plain CLIP) and of explanations of its image-caption
pairs, through the evaluation layer: ``shapvision-clip test`` with this module.

The model is a checkpoint; its captions become the "classes" of :class:`CaptionExplainedModel`, so the
methods (``svo_clip``, ``leave_one_out``, ``kernelshap``, ``rise``, ``saliency``, ``integrated_gradients``,
``random``, ...) and explanation metrics (``localisation``, ``shapley_accuracy``,
``insertion_deletion_patches``) of the classifier evaluation apply to image-caption pairs unchanged.
Per test batch (images with C captions each):
- ``retrieval``: R@1 / R@5 / R@10 in both directions (Karpathy protocol), logged as ``test/t2i_r1`` ...;
- every method explains each image for its first caption (patch insertion / deletion of the
  similarity, ``retrieval_insertion_deletion``: SVO Tables 5-6, our reconstruction of ECLIP's
  protocol), and for every caption for the metrics that declare ``per_caption``: ``localisation``
  (RMA / RRA against the named digit's patches, where the data knows them) and ``shapley_accuracy``
  (one exact computation per image serves all its captions).
One row per method in ``evaluation.csv / .md / .json`` (``EvaluationTableWriter``), heatmaps with the
caption as title (``HeatmapGridWriter``).
"""

import time

import open_clip
import torch

from shapvision.attribution.caption_model import CaptionExplainedModel
from shapvision.attribution.registry import create_method
from shapvision.metrics import ExplanationBatch, create_metric, update_metric
from shapvision.metrics.retrieval import ImageTextRetrieval
from shapvision.metrics.retrieval_insertion_deletion import RetrievalInsertionDeletion
from shapvision.models.masked_backbone import pixel_mask
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import load_module
from shapvision.modules.evaluation import gather_examples, score_table

CHECKPOINT_OPTION = "model.init_args.checkpoint"
EXPLANATION_METRICS = (
    "localisation",
    "shapley_accuracy",
    "insertion_deletion_patches",
    "sparseness",
    "efficiency",
)
MODEL_METRICS = ("retrieval", "retrieval_insertion_deletion")


def caption_text(tokenizer, ids: torch.Tensor) -> str:
    text = tokenizer.decode(ids.tolist()) if hasattr(tokenizer, "decode") else ""
    return text.replace("<start_of_text>", "").split("<end_of_text>")[0].strip()


class ImageTextEvaluation(ShapleyModule):
    def __init__(
        self,
        checkpoint: str,
        clip_model: str,
        img_size: int,
        methods: list[str] | None = None,
        metrics: list[str] | None = None,
        method_options: dict[str, dict] | None = None,
        metric_options: dict[str, dict] | None = None,
        heatmap_images: int = 3,
        forward_chunk: int = 1024,
    ):
        super().__init__()
        self.save_hyperparameters()
        module = load_module(checkpoint, CHECKPOINT_OPTION, ("SVOCLIP", "CLIPFineTune"))
        trained = module.hparams
        for option, value in (("clip_model", clip_model), ("img_size", img_size)):
            if trained[option] != value:
                raise ValueError(
                    f"{CHECKPOINT_OPTION} {checkpoint} was trained with {option}={trained[option]!r}, but "
                    f"model.init_args.{option} is {value!r}: set it to the checkpoint's (it picks the tokenizer "
                    "and image size of the data)"
                )
        self.explained = module.requires_grad_(False)
        self.model = CaptionExplainedModel(module, f"{CHECKPOINT_OPTION} {checkpoint}")
        self.grid_size, self.num_patches = self.model.grid_size, self.model.num_patches
        if methods is None:
            methods = ["svo_clip"] if type(module).__name__ == "SVOCLIP" else []
            methods += ["leave_one_out", "random"]
        metrics = list(EXPLANATION_METRICS + MODEL_METRICS) if metrics is None else list(metrics)
        unknown = set(metrics) - set(EXPLANATION_METRICS + MODEL_METRICS)
        if unknown:
            raise ValueError(
                f"model.init_args.metrics: unknown {sorted(unknown)}; image-text evaluation knows "
                f"{list(EXPLANATION_METRICS + MODEL_METRICS)}"
            )
        method_options, metric_options = method_options or {}, metric_options or {}
        self.methods = {
            m: create_method(m, self.model, **method_options.get(m, {})) for m in methods
        }
        self.metric_names = metrics
        explanation = [m for m in metrics if m in EXPLANATION_METRICS]
        self.scores = torch.nn.ModuleDict(
            {
                method: torch.nn.ModuleDict(
                    {
                        m: create_metric(m, self.num_patches, **metric_options.get(m, {}))
                        for m in explanation
                    }
                )
                for method in self.methods
            }
        )
        # metrics that score every caption of an image, not the first only
        self.per_caption = any(
            getattr(metric, "per_caption", False)
            for scores in self.scores.values()
            for metric in scores.values()
        )
        self.retrieval = ImageTextRetrieval()
        self.retrieval_insdel = torch.nn.ModuleDict()
        self.register_buffer(
            "seconds", torch.zeros(len(self.methods), dtype=torch.float64), persistent=False
        )
        self.register_buffer("pairs_seen", torch.zeros((), dtype=torch.float64), persistent=False)
        self.table: list[dict] = []
        self.examples: list[dict] = []
        self.test_accuracy = None
        self.model_metrics: dict[str, float] = {}
        self.per_image: dict[str, dict[str, dict]] = {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        mean = getattr(datamodule, "mean", (0.0, 0.0, 0.0))
        std = getattr(datamodule, "std", (1.0, 1.0, 1.0))
        if "retrieval_insertion_deletion" in self.metric_names:
            self.retrieval_insdel = torch.nn.ModuleDict(
                {m: RetrievalInsertionDeletion(mean, std) for m in self.methods}
            )
        self.tokenizer = getattr(getattr(datamodule, "tokenizer", None), "tokenizer", None)
        if self.tokenizer is None:
            self.tokenizer = open_clip.get_tokenizer(self.hparams.clip_model)

    def on_test_start(self) -> None:
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "gradient-based methods need autograd during test: set trainer.inference_mode: false "
                "(experiments/*/evaluation*.yaml do)"
            )
        if "localisation" in self.metric_names and not getattr(
            getattr(self.trainer, "datamodule", None), "has_masks", False
        ):
            raise ValueError(
                "metric 'localisation' needs the region each caption names (caption_patches), which only "
                "DigitScenesDataModule provides; drop it from model.init_args.metrics"
            )

    def test_step(self, batch, batch_idx):
        if batch is None:
            return None
        images, index, tokens = batch["image"], batch["image_index"], batch["text"]
        captions = tokens.shape[1]
        module = self.explained
        with torch.no_grad():
            image_features = module.image_features(images)
            texts = module.text_features(tokens.flatten(0, 1))
        text_index = batch["caption_index"].flatten()
        text_image = index.repeat_interleave(captions)
        if "retrieval" in self.metric_names:
            self.retrieval.update(image_features, index, texts, text_index, text_image)
        self.model.set_captions(texts)
        regions = batch.get("caption_patches")
        slots = range(captions) if self.per_caption else [0]
        offsets = torch.arange(images.shape[0], device=images.device) * captions
        cache = {}  # the exact reference values of an image serve all its captions
        for j in slots:
            target = offsets + j
            gt = None
            if regions is not None:
                gt = pixel_mask(regions[:, j], self.grid_size, self.model.patch_size).float()[:, 0]
            explanation_batch = ExplanationBatch(
                images,
                target,
                index,
                self.model,
                gt_mask=gt,
                chunk=self.hparams.forward_chunk,
                cache=cache,
                key=index * captions + j,  # each (image, caption) pair counted once
            )
            attributions = {}
            for k, (name, method) in enumerate(self.methods.items()):
                start = time.perf_counter()
                attribution = method.explain(images, target, index * captions + j)
                self.seconds[k] += time.perf_counter() - start
                attributions[name] = attribution
                for metric in self.scores[name].values():
                    if j == 0 or getattr(metric, "per_caption", False):
                        update_metric(metric, explanation_batch, attribution, method)
                if j == 0 and name in self.retrieval_insdel:
                    self.retrieval_insdel[name].update(
                        images,
                        explanation_batch.pixel_map(attribution),
                        index,
                        module.image_features,
                        texts,
                        text_index,
                        text_image,
                    )
            self._keep_examples(images, tokens[:, j], index, attributions)
            self.pairs_seen += images.shape[0]

    def _keep_examples(self, images, tokens, index, attributions) -> None:
        size = tuple(images.shape[-2:])
        for i in (index < self.hparams.heatmap_images).nonzero().flatten().tolist():
            self.examples.append(
                {
                    "index": len(self.examples) + 10_000 * int(index[i]),
                    "image": images[i].detach().cpu(),
                    "target": 0,
                    "title": caption_text(self.tokenizer, tokens[i]),
                    "maps": {
                        k: a.pixel_map(self.grid_size, size)[i].detach().cpu()
                        for k, a in attributions.items()
                    },
                }
            )

    def on_test_epoch_end(self) -> None:
        self.model_metrics = {}
        if "retrieval" in self.metric_names and self.retrieval.update_count:
            for name, value in self.retrieval.compute().items():
                self.log(f"test/{name}", value)
                self.model_metrics[name] = float(value)
            self.retrieval.reset()
        seconds = self.all_gather(self.seconds).reshape(-1, max(len(self.methods), 1)).sum(0)
        pairs = self.all_gather(self.pairs_seen).sum().clamp_min(1)
        self.table, self.per_image = score_table(
            self,
            self.methods,
            seconds / pairs,
            "ms_per_pair",
            {
                name: {"retrieval_insertion_deletion": m}
                for name, m in self.retrieval_insdel.items()
            },
        )
        self.examples = gather_examples(self.examples)
