"""Samplers: exact subset sizes, Shapley-kernel size frequencies, complements, guided sampling."""

import pytest
import torch
from scipy import stats

from shapvision.shapley import (
    AttributionGuidedSampler,
    ShapleyKernelSampler,
    UniformSizeSampler,
    shapley_kernel_size_probabilities,
)


def test_kernel_probabilities_match_formula():
    n = 10
    p = shapley_kernel_size_probabilities(n)
    k = torch.arange(1, n, dtype=torch.float64)
    expected = (n - 1) / (k * (n - k))
    torch.testing.assert_close(p[1:-1], expected / expected.sum())
    assert p[0] == 0 and p[-1] == 0


@pytest.mark.parametrize("n", [5, 16, 49])
def test_kernel_size_frequencies_pass_chi_square(n):
    sampler = ShapleyKernelSampler(n)
    masks = sampler.sample(20000, generator=torch.Generator().manual_seed(1234))
    sizes = masks.sum(1)
    assert sizes.min() >= 1 and sizes.max() <= n - 1
    observed = torch.bincount(sizes, minlength=n + 1)[1:-1].double()
    expected = shapley_kernel_size_probabilities(n)[1:-1] * masks.shape[0]
    # Pool sparse tail bins so every expected count is >= 5, as chi-square requires.
    keep = expected >= 5
    obs = torch.cat([observed[keep], observed[~keep].sum().view(1)]) if (~keep).any() else observed
    exp = torch.cat([expected[keep], expected[~keep].sum().view(1)]) if (~keep).any() else expected
    assert stats.chisquare(obs.numpy(), exp.numpy()).pvalue > 0.001


def test_kernel_sampler_rejects_a_biased_size_distribution():
    """The chi-square check has power: uniform sizes are rejected as Shapley-kernel samples."""
    n = 16
    masks = UniformSizeSampler(n).sample(20000, generator=torch.Generator().manual_seed(0))
    sizes = masks.sum(1)
    sizes = sizes[(sizes > 0) & (sizes < n)]
    observed = torch.bincount(sizes, minlength=n + 1)[1:-1].double()
    expected = shapley_kernel_size_probabilities(n)[1:-1] * sizes.numel()
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue < 1e-10


def test_within_size_subsets_are_uniform():
    n = 6
    masks = ShapleyKernelSampler(n).sample(60000, generator=torch.Generator().manual_seed(3))
    size2 = masks[masks.sum(1) == 2]
    codes = (size2.long() * (2 ** torch.arange(n))).sum(1)
    counts = torch.bincount(codes, minlength=2**n)
    counts = counts[counts > 0].double()
    assert counts.numel() == 15  # all C(6, 2) subsets appear
    assert stats.chisquare(counts.numpy()).pvalue > 0.001


def test_paired_masks_are_complements_in_order():
    sampler = ShapleyKernelSampler(12, paired=True)
    masks = sampler.sample(64, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (3, 64, 12) and masks.dtype == torch.bool
    assert torch.equal(masks[:, 1::2], ~masks[:, 0::2])
    with pytest.raises(ValueError, match="even"):
        sampler.sample(5)


def test_balanced_sizes_complement_across_the_batch_and_keep_the_kernel_marginal():
    n, batch = 16, 7
    sampler = ShapleyKernelSampler(n, balanced_sizes=True)
    masks = sampler.sample(3, batch_size=batch, generator=torch.Generator().manual_seed(0))
    sizes = masks.sum(-1)  # (batch, masks)
    # Per mask slot, three image pairs sum to N each; the odd image out is free.
    for slot in range(3):
        leftover = sizes[:, slot].sum() - 3 * n
        assert 1 <= leftover <= n - 1
    many = sampler.sample(1, batch_size=20000, generator=torch.Generator().manual_seed(1))
    counts = many.sum(-1).view(-1)
    observed = torch.bincount(counts, minlength=n + 1)[1:-1].double()
    expected = shapley_kernel_size_probabilities(n)[1:-1] * counts.numel()
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > 0.001
    # Subsets are still uniform within a size: each patch is kept with probability 1/2.
    assert (many.float().mean((0, 1)) - 0.5).abs().max() < 0.02
    # Whole batches keep exactly half of the patches (even batch).
    assert many.sum() == 10000 * n


def test_fixed_seed_fixes_masks():
    sampler = ShapleyKernelSampler(20, paired=True)
    a = sampler.sample(32, generator=torch.Generator().manual_seed(7))
    b = sampler.sample(32, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_uniform_size_sampler_covers_0_to_n_uniformly():
    n = 8
    masks = UniformSizeSampler(n).sample(18000, generator=torch.Generator().manual_seed(5))
    counts = torch.bincount(masks.sum(1), minlength=n + 1).double()
    assert counts.numel() == n + 1
    assert stats.chisquare(counts.numpy()).pvalue > 0.001


def test_attribution_guided_sampler_keeps_kernel_sizes_and_follows_sign():
    n, m = 16, 4000
    scores = torch.linspace(-1, 1, n).unsqueeze(0)
    sampler = AttributionGuidedSampler(n, temperature=0.5)
    masks = sampler.sample(scores, m, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (1, m, n)
    sizes = masks[0].sum(1)
    observed = torch.bincount(sizes, minlength=n + 1)[1:-1].double()
    expected = shapley_kernel_size_probabilities(n)[1:-1] * m
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > 0.001
    positive_half, negative_half = (
        masks[0, : m // 2].float().mean(0),
        masks[0, m // 2 :].float().mean(0),
    )
    assert positive_half[-1] > 0.8 > 0.2 > positive_half[0]  # high score -> kept more often
    assert negative_half[0] > 0.8 > 0.2 > negative_half[-1]


def test_attribution_guided_sampler_matches_plackett_luce_first_draw():
    """For size-1 masks, P(i) = exp(z_i / T) / sum_j exp(z_j / T) exactly."""
    n, m, temperature = 5, 40000, 0.7
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    sampler = AttributionGuidedSampler(n, temperature=temperature)
    sampler.size_probabilities = torch.tensor([0.0, 1.0, 0, 0, 0, 0])  # force size 1
    masks = sampler.sample(scores, m, generator=torch.Generator().manual_seed(1))[0, : m // 2]
    z = (scores[0] - scores.mean()) / scores.std()
    expected = torch.softmax(z.double() / temperature, 0) * masks.shape[0]
    observed = masks.double().sum(0)
    assert stats.chisquare(observed.numpy(), expected.numpy()).pvalue > 0.001


def test_guided_sampler_rejects_bad_scores():
    sampler = AttributionGuidedSampler(4)
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        sampler.sample(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="even"):
        sampler.sample(torch.zeros(1, 4), 3)
