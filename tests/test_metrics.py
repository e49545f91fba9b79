"""Metrics on hand-computed cases."""

import pytest
import torch

from shapvision.metrics import (
    MaskedAgreementByFraction,
    ShapleyAccuracy,
    pearson_rows,
    spearman_rows,
)
from shapvision.metrics.patch_insertion_deletion import curve_masks


def test_shapley_accuracy_hand_values():
    reference = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]]])  # (1, N=3, K=2)
    estimate = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [5.0, 1.0]]])
    metric = ShapleyAccuracy()
    metric.update(estimate, reference, torch.tensor([0]))
    result = metric.compute()
    assert result["l2_target"].item() == pytest.approx(2.0)  # target column differs by (0, 0, 2)
    assert result["l2_other"].item() == pytest.approx(2**0.5)  # other column differs by (0, -1, 1)
    assert result["spearman_target"].item() == pytest.approx(1.0)
    assert result["pearson_other"].item() == pytest.approx(-0.5)


def test_correlations_match_scipy():
    from scipy import stats

    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(5, 20, generator=g, dtype=torch.float64),
        torch.randn(5, 20, generator=g, dtype=torch.float64),
    )
    for i in range(5):
        assert pearson_rows(a, b)[i].item() == pytest.approx(stats.pearsonr(a[i], b[i])[0])
        assert spearman_rows(a, b)[i].item() == pytest.approx(stats.spearmanr(a[i], b[i])[0])


def test_insertion_deletion_on_an_additive_scorer():
    """Score = fraction of the total attribution mass kept; curves are then known in closed form."""
    attribution = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    weights = attribution / attribution.sum()

    def score(keep):
        return (keep.float() * weights).sum(-1)

    insertion_masks, deletion_masks = curve_masks(attribution)
    insertion, deletion = score(insertion_masks), score(deletion_masks)
    torch.testing.assert_close(insertion[0], torch.tensor([0.0, 0.5, 5 / 6, 1.0, 1.0]))
    torch.testing.assert_close(deletion[0], torch.tensor([1.0, 0.5, 1 / 6, 0.0, 0.0]))


def test_masked_agreement_bins_by_fraction():
    metric = MaskedAgreementByFraction(num_bins=2)
    metric.update(
        torch.tensor([1.0, 3.0, 10.0]), torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.1, 0.4, 1.0])
    )
    result = metric.compute()
    torch.testing.assert_close(result["kl"], torch.tensor([2.0, 10.0]))
    torch.testing.assert_close(result["accuracy"], torch.tensor([0.5, 1.0]))
