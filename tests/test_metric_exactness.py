"""The evaluation's counting defects, each on a case that the old code got wrong: DDP padding, ties in
retrieval and Spearman, R-SRG's sign, RISE's blur, Chefer's constant map, per-channel fills; and the
bootstrap intervals, paired comparison and median rank that every table now carries."""

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage, stats
from torchvision.transforms.functional import gaussian_blur

from shapvision.attribution import Attribution
from shapvision.metrics import ExplanationBatch
from shapvision.metrics.aopc_lodds import AOPCLOdds
from shapvision.metrics.bootstrap import bootstrap_intervals, paired_bootstrap
from shapvision.metrics.correlation import spearman_rows
from shapvision.metrics.explanation_batch import remove_top_fractions
from shapvision.metrics.pixel_insertion_deletion import PixelInsertionDeletion, rise_blur
from shapvision.metrics.retrieval import ImageTextRetrieval, retrieval_recalls
from shapvision.metrics.segmentation import SegmentationScores
from shapvision.metrics.srg import SymmetricRelevanceGain
from shapvision.metrics.table_cells import median_ranks

from .helpers import MODEL


def images(count, seed=0):
    return torch.rand(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def maps(count, seed=1):
    return torch.randn(count, 4, generator=torch.Generator().manual_seed(seed))


def explanation_batch(x, index, gt_mask=None):
    return ExplanationBatch(
        images=x,
        target=torch.ones(len(x), dtype=torch.long),
        index=index,
        model=MODEL,
        gt_mask=gt_mask,
    )


@pytest.mark.parametrize("metric_cls", [AOPCLOdds, SymmetricRelevanceGain, SegmentationScores])
def test_the_copy_a_distributed_sampler_pads_with_is_counted_once(metric_cls):
    """5 images on 2 ranks: the sampler gives rank 0 images 0, 2, 4 and rank 1 images 1, 3, 0 (a copy)."""
    x, values = images(5), maps(5)
    gt = (torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    single, ranks = metric_cls(), [metric_cls(), metric_cls()]
    single.update(explanation_batch(x, torch.arange(5), gt), Attribution(values))
    for metric, rows in zip(ranks, ([0, 2, 4], [1, 3, 0]), strict=True):
        rows = torch.tensor(rows)
        metric.update(explanation_batch(x[rows], rows, gt[rows]), Attribution(values[rows]))
    gathered = ranks[0]  # what the "cat" reduction hands every rank
    gathered.keys, gathered.rows = gathered.keys + ranks[1].keys, gathered.rows + ranks[1].rows
    expected, got = single.compute(), gathered.compute()
    for column in metric_cls.columns:
        assert got[column].item() == pytest.approx(expected[column].item(), abs=1e-7), column
        assert got[f"{column}_ci_low"].item() == pytest.approx(expected[f"{column}_ci_low"].item())


def brute_force_recalls(similarity, caption_image, k):
    """Mean over every tie-breaking order of the candidates: R@k per query."""
    num_images, num_texts = similarity.shape
    t2i, i2t = [], []
    for t in range(num_texts):
        hits = [
            order.index(int(caption_image[t])) < k
            for perm in itertools.permutations(range(num_images))
            for order in [sorted(perm, key=lambda i: -similarity[i, t])]
        ]
        t2i.append(np.mean(hits))
    for i in range(num_images):
        hits = []
        for perm in itertools.permutations(range(num_texts)):
            order = sorted(perm, key=lambda t: -similarity[i, t])
            first_own = min(order.index(t) for t in range(num_texts) if caption_image[t] == i)
            hits.append(first_own < k)
        i2t.append(np.mean(hits))
    return np.array(t2i), np.array(i2t)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_recall_breaks_ties_at_random_in_expectation(seed):
    similarity = torch.randint(0, 3, (3, 6), generator=torch.Generator().manual_seed(seed)).float()
    caption_image = torch.tensor([0, 0, 1, 1, 2, 2])
    for k in (1, 2, 3):
        got = retrieval_recalls(similarity, caption_image, (k,))
        t2i, i2t = brute_force_recalls(similarity, caption_image, k)
        np.testing.assert_allclose(got[f"t2i_r{k}"].numpy(), t2i, atol=1e-9)
        np.testing.assert_allclose(got[f"i2t_r{k}"].numpy(), i2t, atol=1e-9)


def test_retrieval_of_identical_images_scores_chance():
    """The 0 % point of retrieval insertion: every image is the same black image."""
    metric = ImageTextRetrieval(ks=(1, 5))
    features = torch.nn.functional.normalize(torch.ones(10, 4), dim=1)
    texts = torch.nn.functional.normalize(torch.randn(20, 4), dim=1)
    metric.update(
        features, torch.arange(10), texts, torch.arange(20), torch.arange(10).repeat_interleave(2)
    )
    result = metric.compute()
    assert result["t2i_r1"].item() == pytest.approx(1 / 10)
    assert result["t2i_r5"].item() == pytest.approx(5 / 10)
    assert result["i2t_r1"].item() == pytest.approx(0.1, abs=0.06)  # texts differ: not tied here


def test_r_srg_keeps_the_sign_of_srg_and_stays_bounded():
    """An image whose score rises when everything is occluded (negative span) no longer flips R-SRG."""
    values = {
        "key": torch.arange(2),
        "srg": torch.tensor([-0.060, -0.038], dtype=torch.float64),
        "span": torch.tensor([-0.030, 0.200], dtype=torch.float64),
    }
    result = SymmetricRelevanceGain.aggregate(torch.ones(1, 2, dtype=torch.float64), values)
    per_image_mean = (values["srg"] / values["span"]).mean()
    assert per_image_mean > 0  # the old definition: positive for a negative SRG
    assert result["srg"].item() == pytest.approx(-0.049)
    assert result["r_srg"].item() == pytest.approx(-0.098 / 0.23)


def test_spearman_uses_average_ranks_and_a_constant_row_is_undefined():
    estimate = torch.tensor([[0.0, 0.0, 0.0, 0.3, 0.1, 0.7, 0.0, 0.2]], dtype=torch.float64)
    reference = torch.tensor([[0.05, -0.1, 0.02, 0.4, 0.1, 0.5, 0.0, 0.1]], dtype=torch.float64)
    expected = stats.spearmanr(estimate[0], reference[0]).statistic
    assert spearman_rows(estimate, reference).item() == pytest.approx(expected)
    constant = torch.ones(1, 8, dtype=torch.float64)
    assert spearman_rows(constant, reference).isnan().all()


def test_rise_blur_is_its_kernel_with_zero_padding_not_torchvision_blur():
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    delta = np.zeros((11, 11))
    delta[5, 5] = 1
    kernel = ndimage.gaussian_filter(delta, 5)  # RISE's gkern(11, 5)
    expected = np.stack(
        [ndimage.correlate(c, kernel, mode="constant", cval=0.0) for c in x[0].numpy()]
    )
    np.testing.assert_allclose(rise_blur(x, 11, 5.0)[0].numpy(), expected, atol=1e-12)
    torchvision = gaussian_blur(x, [11, 11], [5.0, 5.0])
    assert (rise_blur(x, 11, 5.0) - torchvision).abs().max() > 0.05


def test_pixel_insertion_starts_from_rise_blur_by_default():
    x = images(2)
    first_point = {}
    for blur in ("rise", "torchvision"):
        metric = PixelInsertionDeletion(num_steps=4, blur_kernel=3, blur_sigma=1.0, blur=blur)
        metric.update(explanation_batch(x, torch.arange(2)), Attribution(maps(2)))
        first_point[blur] = metric.compute()["insertion_curve"][0].item()
    blurred = rise_blur(x, 3, 1.0)
    expected = MODEL.probabilities(blurred, torch.ones(2, dtype=torch.long)).mean().item()
    assert first_point["rise"] == pytest.approx(expected, abs=1e-6)
    assert first_point["torchvision"] != pytest.approx(expected, abs=1e-4)


def test_a_constant_map_scores_chefer_ap_of_one_half():
    gt = torch.zeros(1, 4, 4)
    gt[0, :1] = 1  # a quarter of the image is the object
    metric = SegmentationScores()
    metric.update(explanation_batch(images(1), torch.arange(1), gt), Attribution(torch.zeros(1, 4)))
    result = metric.compute()
    assert result["mAP"].item() == pytest.approx(0.5)
    assert result["pixel_accuracy"].item() == pytest.approx(0.75)  # nothing predicted foreground


def test_per_channel_fill_sets_each_channel_to_its_value():
    x = torch.rand(1, 3, 4, 4)
    pixel_map = torch.arange(16.0).view(1, 4, 4)
    removed = remove_top_fractions(x, pixel_map, (0.25,), [-1.0, -2.0, -3.0])
    top = pixel_map.flatten() >= 12  # the 4 highest
    for c, value in enumerate((-1.0, -2.0, -3.0)):
        assert (removed[0, c].flatten()[top] == value).all()
        assert torch.equal(removed[0, c].flatten()[~top], x[0, c].flatten()[~top])
    with pytest.raises(ValueError, match="one per channel"):
        remove_top_fractions(x, pixel_map, (0.25,), [0.0, 0.0])
    metric = SymmetricRelevanceGain(fill=[0.5, 0.5, 0.5])
    metric.update(
        ExplanationBatch(x, torch.ones(1, dtype=torch.long), torch.arange(1), MODEL),
        Attribution(maps(1)),
    )
    assert metric.compute()["srg"].isfinite()


def test_bootstrap_interval_width_matches_the_standard_error_of_a_mean():
    aopc = torch.rand(400, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values = {"key": torch.arange(400), "aopc": aopc, "lodds": aopc}
    low, high = bootstrap_intervals(AOPCLOdds.aggregate, values, ["aopc"], 2000, 0.95, 0)["aopc"]
    standard_error = aopc.std().item() / 20
    assert (high - low).item() / 2 == pytest.approx(1.96 * standard_error, rel=0.12)
    assert low < aopc.mean() < high


def test_paired_bootstrap_tells_a_real_difference_from_none():
    base = torch.rand(200, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = {"key": torch.arange(200), "aopc": base, "lodds": base}
    shifted = {"key": torch.arange(200), "aopc": base + 0.02, "lodds": base}
    same = paired_bootstrap(AOPCLOdds, a, a, resamples=500)
    different = paired_bootstrap(AOPCLOdds, shifted, a, resamples=500)
    assert same["aopc"]["p_value"] == 1.0
    assert different["aopc"]["p_value"] < 0.01 and different["aopc"]["difference"] == pytest.approx(
        0.02
    )
    assert different["lodds"]["p_value"] == 1.0


def test_median_rank_follows_each_columns_direction():
    rows = [
        {"method": "a", "insertion": 0.9, "deletion": 0.1, "aopc": 0.5},
        {"method": "b", "insertion": 0.5, "deletion": 0.3, "aopc": 0.5},
        {"method": "c", "insertion": 0.1, "deletion": 0.2, "aopc": 0.1},
    ]
    ranks = median_ranks(rows, {"insertion": True, "deletion": False, "aopc": True})
    assert ranks == [1.0, 2.0, 3.0]  # a: 1, 1, 1.5 (tied on aopc); b: 2, 3, 1.5; c: 3, 2, 3


def test_segmentation_map_equals_sklearn_average_precision_per_image():
    from sklearn.metrics import average_precision_score

    from shapvision.metrics.segmentation import min_max

    generator = torch.Generator().manual_seed(5)
    gt = (torch.rand(4, 4, 4, generator=generator) > 0.6).float()
    values = torch.randn(4, 4, generator=generator)
    batch = explanation_batch(images(4), torch.arange(4), gt)
    metric = SegmentationScores()
    metric.update(batch, Attribution(values))
    res = min_max(batch.pixel_map(Attribution(values))).double()
    expected = [
        average_precision_score(
            np.concatenate([1 - g.flatten(), g.flatten()]),
            np.concatenate([1 - r.flatten(), r.flatten()]),
        )
        for r, g in zip(res.numpy(), gt.numpy(), strict=True)
    ]
    np.testing.assert_allclose(metric.compute()["per_image"]["ap"].numpy(), expected, atol=1e-6)
