"""Explanation metrics by name: adding one is one new file and one line here.

A metric's ``update(batch, attribution)`` sees the batch and one method's attribution. What else it
needs it declares as class attributes, which the evaluation reads:
- ``needs_method = True``: it runs the method again (max-sensitivity, model randomisation, the
  efficiency check that reads what kind of values it returns) and gets it as a third argument;
- ``needs_masks = True``: ground-truth masks in the batch (segmentation; localisation: the region
  each caption names), refused before compute on data without them;
- ``needs_retrieval = True``: an image-text batch's captions and image features (retrieval
  insertion / deletion), so image-text evaluation only;
- ``per_caption = True``: image-text evaluation scores every caption of an image, not the first only.
"""

import inspect

from torchmetrics import Metric

from shapvision.metrics.aopc_lodds import AOPCLOdds
from shapvision.metrics.efficiency import EfficiencyGap
from shapvision.metrics.explanation_shapley_accuracy import ExplanationShapleyAccuracy
from shapvision.metrics.max_sensitivity import MaxSensitivity
from shapvision.metrics.model_randomisation import ModelRandomisation
from shapvision.metrics.patch_insertion_deletion import PatchInsertionDeletion
from shapvision.metrics.pixel_insertion_deletion import PixelInsertionDeletion
from shapvision.metrics.relevance_localisation import RelevanceLocalisation
from shapvision.metrics.retrieval_insertion_deletion import RetrievalInsertionDeletion
from shapvision.metrics.saco import SaCo
from shapvision.metrics.segmentation import SegmentationScores
from shapvision.metrics.sparseness import Sparseness
from shapvision.metrics.srg import SymmetricRelevanceGain

METRICS: dict[str, type[Metric]] = {
    "insertion_deletion_patches": PatchInsertionDeletion,
    "insertion_deletion_pixels": PixelInsertionDeletion,
    "aopc_lodds": AOPCLOdds,
    "saco": SaCo,
    "segmentation": SegmentationScores,
    "srg": SymmetricRelevanceGain,
    "localisation": RelevanceLocalisation,
    "shapley_accuracy": ExplanationShapleyAccuracy,
    "efficiency": EfficiencyGap,
    "sparseness": Sparseness,
    "max_sensitivity": MaxSensitivity,
    "mprt": ModelRandomisation,
    "retrieval_insertion_deletion": RetrievalInsertionDeletion,
}


def create_metric(name: str, num_patches: int, **options) -> Metric:
    if name not in METRICS:
        raise ValueError(
            f"unknown metric {name!r} (model.init_args.metrics); known: {', '.join(sorted(METRICS))}"
        )
    cls = METRICS[name]
    if "num_patches" in inspect.signature(cls.__init__).parameters:
        options = {"num_patches": num_patches, **options}
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(
            f"bad options for metric {name!r} (model.init_args.metric_options.{name}): {err}"
        ) from err


def needs(metric: Metric | type, requirement: str) -> bool:
    """Whether ``metric`` declares ``needs_<requirement>`` (``method``, ``masks``, ``retrieval``)."""
    return bool(getattr(metric, f"needs_{requirement}", False))


def update_metric(metric: Metric, batch, attribution, method) -> None:
    if needs(metric, "method"):
        metric.update(batch, attribution, method)
    else:
        metric.update(batch, attribution)
