"""Explanation metrics by name: adding one is one new file and one line here."""

import inspect

from torchmetrics import Metric

from shapvision.metrics.aopc_lodds import AOPCLOdds
from shapvision.metrics.explanation_shapley_accuracy import ExplanationShapleyAccuracy
from shapvision.metrics.patch_insertion_deletion import PatchInsertionDeletion
from shapvision.metrics.pixel_insertion_deletion import PixelInsertionDeletion
from shapvision.metrics.relevance_localisation import RelevanceLocalisation
from shapvision.metrics.saco import SaCo
from shapvision.metrics.segmentation import SegmentationScores
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
}
NEEDS_MASKS = ("segmentation", "localisation")


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
