"""Evaluation of an image-text model (SVO-CLIP or plain CLIP) and of explanations of its image-caption
pairs, through the evaluation layer: ``shapvision-clip test`` with this module.

The model is a checkpoint (``checkpoint``), or, for zero-shot rows (SVO Table 4's "CLIP": the pretrained
EVA02-B-16 with no training), an open_clip weights file (``pretrained``), evaluated as a plain CLIP (the
CLS embedding, :class:`CLIPFineTune`) with no fine-tuning. Its captions become the "classes" of
:class:`CaptionExplainedModel`, so the
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

import open_clip
import torch

from shapvision.attribution.caption_model import CaptionExplainedModel
from shapvision.attribution.registry import create_method
from shapvision.metrics import ExplanationBatch, RetrievalContext
from shapvision.metrics.retrieval import ImageTextRetrieval
from shapvision.models.capabilities import ImageTextModel, SelfExplaining
from shapvision.models.masked_backbone import pixel_mask
from shapvision.modules.base import ShapleyModule
from shapvision.modules.checkpoints import load_module
from shapvision.modules.clip_finetune import CLIPFineTune
from shapvision.modules.evaluation_core import EvaluationCore

CHECKPOINT_OPTION = "model.init_args.checkpoint"
PRETRAINED_OPTION = "model.init_args.pretrained"
DEFAULT_METRICS = (
    "localisation",
    "shapley_accuracy",
    "insertion_deletion_patches",
    "sparseness",
    "efficiency",
    "retrieval",
    "retrieval_insertion_deletion",
)


def caption_text(tokenizer, ids: torch.Tensor) -> str:
    text = tokenizer.decode(ids.tolist()) if hasattr(tokenizer, "decode") else ""
    return text.replace("<start_of_text>", "").split("<end_of_text>")[0].strip()


class ImageTextEvaluation(ShapleyModule):
    def __init__(
        self,
        clip_model: str,
        img_size: int,
        checkpoint: str | None = None,
        pretrained: str | None = None,
        methods: list[str] | None = None,
        metrics: list[str] | None = None,
        method_options: dict[str, dict] | None = None,
        metric_options: dict[str, dict] | None = None,
        heatmap_images: int = 3,
        forward_chunk: int = 1024,
    ):
        super().__init__()
        self.save_hyperparameters()
        if (checkpoint is None) == (pretrained is None):
            raise ValueError(
                f"set exactly one of {CHECKPOINT_OPTION} (a trained image-text run) and {PRETRAINED_OPTION} "
                "(an open_clip weights file, evaluated zero-shot)"
            )
        if pretrained is not None:
            module = CLIPFineTune(clip_model=clip_model, pretrained=pretrained, img_size=img_size)
            self.source = f"{PRETRAINED_OPTION} {pretrained} (zero-shot)"
        else:
            module = self.trained_module(checkpoint, clip_model, img_size)
            self.source = f"{CHECKPOINT_OPTION} {checkpoint}"
        self.explained = module.requires_grad_(False)
        self.model = CaptionExplainedModel(module, self.source)
        self.grid_size, self.num_patches = self.model.grid_size, self.model.num_patches
        if methods is None:
            methods = ["svo_clip"] if isinstance(module, SelfExplaining) else []
            methods += ["leave_one_out", "random"]
        metrics = list(DEFAULT_METRICS) if metrics is None else list(metrics)
        method_options = method_options or {}
        self.methods = {
            m: create_method(m, self.model, **method_options.get(m, {})) for m in methods
        }
        # retrieval ranks the model's own embeddings; every other metric scores the explanations
        self.score_retrieval = "retrieval" in metrics
        self.core = EvaluationCore(
            self.methods,
            [m for m in metrics if m != "retrieval"],
            metric_options,
            self.num_patches,
            self.grid_size,
            heatmap_images,
            "pair",
        )
        self.retrieval = ImageTextRetrieval()
        self.model_metrics: dict[str, float] = {}

    @staticmethod
    def trained_module(checkpoint: str, clip_model: str, img_size: int):
        module = load_module(
            checkpoint,
            CHECKPOINT_OPTION,
            lambda cls: issubclass(cls, ImageTextModel),
            "an image-text checkpoint (SVOCLIP, CLIPFineTune)",
        )
        trained = module.hparams
        for option, value in (("clip_model", clip_model), ("img_size", img_size)):
            if trained[option] != value:
                raise ValueError(
                    f"{CHECKPOINT_OPTION} {checkpoint} was trained with {option}={trained[option]!r}, but "
                    f"model.init_args.{option} is {value!r}: set it to the checkpoint's (it picks the tokenizer "
                    "and image size of the data)"
                )
        return module

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        self.pixel_mean = tuple(getattr(datamodule, "mean", (0.0, 0.0, 0.0)))
        self.pixel_std = tuple(getattr(datamodule, "std", (1.0, 1.0, 1.0)))
        self.tokenizer = getattr(getattr(datamodule, "tokenizer", None), "tokenizer", None)
        if self.tokenizer is None:
            self.tokenizer = open_clip.get_tokenizer(self.hparams.clip_model)

    def on_test_start(self) -> None:
        self.core.start(
            self.trainer.datamodule,
            "the region each caption names (caption_patches, which only DigitScenesDataModule provides)",
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
        if self.score_retrieval:
            self.retrieval.update(image_features, index, texts, text_index, text_image)
        self.model.set_captions(texts)
        retrieval = RetrievalContext(
            module.image_features, texts, text_index, text_image, self.pixel_mean, self.pixel_std
        )
        regions = batch.get("caption_patches")
        slots = range(captions) if self.core.per_caption else [0]
        offsets = torch.arange(images.shape[0], device=images.device) * captions
        cache = {}  # the exact reference values of an image serve all its captions
        for j in slots:
            gt = None
            if regions is not None:
                gt = pixel_mask(regions[:, j], self.grid_size, self.model.patch_size).float()[:, 0]
            explanation_batch = ExplanationBatch(
                images,
                offsets + j,
                index,
                self.model,
                gt_mask=gt,
                chunk=self.hparams.forward_chunk,
                cache=cache,
                key=index * captions + j,  # each (image, caption) pair counted once
                retrieval=retrieval,
            )
            # metrics of one caption per image score the first; per-caption metrics every one
            attributions = self.core.score(explanation_batch, every_metric=j == 0)
            titles = [caption_text(self.tokenizer, t) for t in tokens[:, j]]
            self.core.keep_examples(explanation_batch, attributions, titles, slot=j)

    def on_test_epoch_end(self) -> None:
        self.model_metrics = {}
        if self.score_retrieval and self.retrieval.update_count:
            for name, value in self.retrieval.compute().items():
                self.log(f"test/{name}", value)
                self.model_metrics[name] = float(value)
            self.retrieval.reset()
        self.result = self.core.finish(
            self,
            self.hparams.checkpoint or self.hparams.pretrained,
            model_metrics=self.model_metrics,
        )
