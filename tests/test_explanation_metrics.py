"""Every explanation metric on a hand-computed case, with an oracle (Quantus) where definitions match."""

import math

import numpy as np
import pytest
import torch

from shapvision.attribution import Attribution
from shapvision.metrics import ExplanationBatch
from shapvision.metrics.aopc_lodds import AOPCLOdds
from shapvision.metrics.patch_insertion_deletion import PatchInsertionDeletion
from shapvision.metrics.pixel_insertion_deletion import PixelInsertionDeletion, trapezoid_auc
from shapvision.metrics.relevance_localisation import RelevanceLocalisation
from shapvision.metrics.saco import SaCo, saco_scores
from shapvision.metrics.segmentation import SegmentationScores
from shapvision.metrics.srg import SymmetricRelevanceGain

from .helpers import IMAGE, MODEL, sigmoid


def batch(images=IMAGE, gt_mask=None, labels=None):
    return ExplanationBatch(
        images=images,
        target=torch.ones(images.shape[0], dtype=torch.long),
        index=torch.arange(images.shape[0]),
        model=MODEL,
        labels=labels,
        gt_mask=gt_mask,
    )


def patches(*values):
    return Attribution(torch.tensor([values], dtype=torch.float32))


def test_patch_insertion_deletion_is_the_mean_of_the_hand_computed_curve():
    metric = PatchInsertionDeletion(4)
    metric.update(batch(), patches(4, 3, 2, 1))
    result = metric.compute()
    # insertion reveals 4, then 3, 2, 1: mean pixel 0, 1, 1.75, 2.25, 2.5
    insertion = [sigmoid(4 * m) for m in (0, 1, 1.75, 2.25, 2.5)]
    deletion = [sigmoid(4 * m) for m in (2.5, 1.5, 0.75, 0.25, 0)]
    assert float(result["insertion_patches"]) == pytest.approx(np.mean(insertion), abs=1e-6)
    assert float(result["deletion_patches"]) == pytest.approx(np.mean(deletion), abs=1e-6)


def test_pixel_insertion_deletion_uses_blur_and_zero_and_the_trapezoid():
    assert float(trapezoid_auc(torch.tensor([1.0, 0.5, 0.0]))) == pytest.approx(0.5)
    metric = PixelInsertionDeletion(num_steps=4, blur_kernel=3, blur_sigma=100.0)
    metric.update(batch(), Attribution(torch.zeros(1, 4), IMAGE[:, 0]))
    result = metric.compute()
    deletion = [sigmoid(4 * m) for m in (2.5, 1.5, 0.75, 0.25, 0)]
    expected = (sum(deletion) - deletion[0] / 2 - deletion[-1] / 2) / 4
    assert float(result["deletion_pixels"]) == pytest.approx(expected, abs=1e-6)
    # a blur leaves the mean almost unchanged here, so insertion starts near p(x), not at 0.5
    assert float(result["insertion_curve"][-1]) == pytest.approx(sigmoid(10), abs=1e-6)


def test_aopc_and_lodds_on_removed_top_pixels():
    metric = AOPCLOdds(fractions=(0.25, 0.5))
    metric.update(batch(), Attribution(torch.zeros(1, 4), IMAGE[:, 0]))
    result = metric.compute()
    p0 = sigmoid(10)
    removed = [
        sigmoid(4 * 1.5),
        sigmoid(4 * 0.75),
    ]  # top 4 pixels (patch 0), then top 8 (patches 0, 1)
    assert float(result["aopc"]) == pytest.approx(np.mean([abs(p0 - p) for p in removed]), abs=1e-6)
    assert float(result["lodds"]) == pytest.approx(
        np.mean([math.log(p / p0) for p in removed]), abs=1e-6
    )


def test_saco_counts_agreeing_and_disagreeing_pairs():
    salience = torch.tensor([[3.0, 2.0, 1.0]])
    f, w = saco_scores(salience, torch.tensor([[0.3, 0.2, 0.1]]))  # drops ordered as salience
    assert float(f / w) == 1.0
    f, w = saco_scores(salience, torch.tensor([[0.1, 0.2, 0.3]]))  # reversed
    assert float(f / w) == -1.0
    # d: G1 > G3 > G2. Pairs: (1,2) +1, (1,3) +2, (2,3) -(1) -> F = 2, W = 4
    f, w = saco_scores(salience, torch.tensor([[0.3, 0.1, 0.2]]))
    assert float(f) == 2.0 and float(w) == 4.0


def test_saco_on_a_faithful_map_is_one_and_on_its_reverse_minus_one():
    faithful, reversed_ = SaCo(num_groups=4), SaCo(num_groups=4)
    faithful.update(batch(), Attribution(torch.zeros(1, 4), IMAGE[:, 0]))
    reversed_.update(batch(), Attribution(torch.zeros(1, 4), -IMAGE[:, 0]))
    assert float(faithful.compute()["saco"]) == pytest.approx(1.0)
    assert float(reversed_.compute()["saco"]) == pytest.approx(-1.0)


def test_segmentation_scores_on_a_known_mask():
    gt = torch.zeros(1, 4, 4, dtype=torch.bool)
    gt[0, :2, :2] = True  # the object is patch 0
    metric = SegmentationScores()
    metric.update(batch(gt_mask=gt), Attribution(torch.zeros(1, 4), IMAGE[:, 0]))
    result = metric.compute()
    # Res = (x - 1) / 3; mean 0.5 -> foreground = patches 0 and 1 (values 1, 2/3): 12 of 16 correct
    assert float(result["pixel_accuracy"]) == pytest.approx(12 / 16)
    # IoU background = 8 / 12, foreground = 4 / 8
    assert float(result["mIoU"]) == pytest.approx((8 / 12 + 4 / 8) / 2)
    from sklearn.metrics import average_precision_score

    res = ((IMAGE[0, 0] - 1) / 3).flatten().numpy()
    g = gt.flatten().numpy().astype(int)
    expected = average_precision_score(np.concatenate([1 - g, g]), np.concatenate([1 - res, res]))
    assert float(result["mAP"]) == pytest.approx(expected, abs=1e-6)


def test_rma_rra_by_hand_and_rma_against_quantus():
    gt = torch.zeros(1, 4, 4, dtype=torch.bool)
    gt[0, :2, 2:] = True  # patch 1
    relevance = IMAGE[:, 0] - 2.5  # positive in patches 0 (1.5) and 1 (0.5)
    metric = RelevanceLocalisation()
    metric.update(batch(gt_mask=gt), Attribution(torch.zeros(1, 4), relevance))
    result = metric.compute()
    assert float(result["rma"]) == pytest.approx(4 * 0.5 / (4 * 1.5 + 4 * 0.5))
    assert float(result["rra"]) == 0.0  # the top 4 pixels are patch 0
    quantus = pytest.importorskip("quantus")
    positive = relevance.clamp_min(0).numpy()[:, None]
    oracle = quantus.RelevanceMassAccuracy(disable_warnings=True, abs=False, normalise=False)(
        model=None,
        x_batch=IMAGE.numpy(),
        y_batch=np.array([1]),
        a_batch=positive,
        s_batch=gt.numpy()[:, None].astype(float),
    )
    assert float(result["rma"]) == pytest.approx(oracle[0], abs=1e-6)


def test_srg_is_the_area_between_least_and_most_influential_first():
    metric = SymmetricRelevanceGain()
    metric.update(batch(), patches(4, 3, 2, 1))
    result = metric.compute()
    mif = [sigmoid(4 * m) for m in (2.5, 1.5, 0.75, 0.25, 0)]
    lif = [sigmoid(4 * m) for m in (2.5, 2.25, 1.75, 1.0, 0)]
    gap = np.array(lif) - np.array(mif)
    srg = (gap.sum() - gap[0] / 2 - gap[-1] / 2) / 4
    assert float(result["srg"]) == pytest.approx(srg, abs=1e-6)
    assert float(result["r_srg"]) == pytest.approx(srg / (mif[0] - mif[-1]), abs=1e-6)
    reverse = SymmetricRelevanceGain()
    reverse.update(batch(), patches(1, 2, 3, 4))
    assert float(reverse.compute()["srg"]) == pytest.approx(-srg, abs=1e-6)


def test_localisation_metrics_refuse_a_batch_without_masks():
    with pytest.raises(ValueError, match="need ground-truth masks"):
        RelevanceLocalisation().update(batch(), patches(1, 2, 3, 4))
    with pytest.raises(ValueError, match="segmentation metrics need ground-truth masks"):
        SegmentationScores().update(batch(), patches(1, 2, 3, 4))


def test_shapley_accuracy_of_the_logit_game_is_exact_for_an_additive_model():
    """Logits [0, 4 * mean pixel] are additive over patches: the logit game's Shapley values are each
    patch's contribution 4 * (4 pixels * its value) / 16 = its value, so (4, 3, 2, 1) scores L2 0."""
    from shapvision.metrics.explanation_shapley_accuracy import ExplanationShapleyAccuracy

    metric = ExplanationShapleyAccuracy(images=1, link="identity")
    metric.update(batch(), patches(4.0, 3.0, 2.0, 1.0))
    result = metric.compute()
    assert float(result["shapley_l2"]) == pytest.approx(0.0, abs=1e-6)
    assert float(result["shapley_pearson"]) == pytest.approx(1.0)
    probability = ExplanationShapleyAccuracy(images=1)
    probability.update(batch(), patches(4.0, 3.0, 2.0, 1.0))
    assert float(probability.compute()["shapley_l2"]) > 0.01  # the softmax game is not additive
