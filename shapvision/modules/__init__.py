"""LightningModules: thin wiring of backbones, heads, objectives and metrics."""

from shapvision.modules.base import ShapleyModule
from shapvision.modules.classifier import Classifier
from shapvision.modules.evaluation import Evaluation
from shapvision.modules.explainer import Explainer
from shapvision.modules.surrogate import Surrogate
from shapvision.modules.svo_classifier import SVOClassifier

__all__ = ["Classifier", "Evaluation", "Explainer", "SVOClassifier", "ShapleyModule", "Surrogate"]
