"""LightningModules: thin wiring of backbones, heads, objectives and metrics."""

from shapvision.modules.base import ShapleyModule
from shapvision.modules.classifier import Classifier
from shapvision.modules.classifier_comparison import ClassifierComparison
from shapvision.modules.clip_finetune import CLIPFineTune
from shapvision.modules.evaluation import Evaluation
from shapvision.modules.explain_checkpoint import ExplainCheckpoint
from shapvision.modules.explainer import Explainer
from shapvision.modules.image_text import ImageTextModule
from shapvision.modules.image_text_evaluation import ImageTextEvaluation
from shapvision.modules.surrogate import Surrogate
from shapvision.modules.svo_classifier import SVOClassifier
from shapvision.modules.svo_clip import SVOCLIP

__all__ = [
    "CLIPFineTune",
    "Classifier",
    "ClassifierComparison",
    "Evaluation",
    "ExplainCheckpoint",
    "Explainer",
    "ImageTextEvaluation",
    "ImageTextModule",
    "SVOCLIP",
    "SVOClassifier",
    "ShapleyModule",
    "Surrogate",
]
