"""Objectives on hand-made games: each is minimised exactly where the theory says."""

import pytest
import torch

from shapvision.objectives import (
    fastshap_loss,
    jensen_shannon,
    salvage_loss,
    simshap_loss,
    surrogate_kl_loss,
    svo_shapley_loss,
)
from shapvision.objectives.salvage import Salvage
from shapvision.shapley import (
    PairwiseInteractionGame,
    ShapleyKernelSampler,
    additive_efficient_normalization,
    exact_shapley,
)
from shapvision.shapley.samplers import (
    conditional_bernoulli_log_prob,
    conditional_bernoulli_subsets,
    shapley_kernel_log_prob,
)


def additive_setup(batch=3, n=9, k=4, m=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    coefficients = torch.randn(batch, n, k, dtype=torch.float64, generator=g)
    constant = torch.randn(batch, k, dtype=torch.float64, generator=g)
    masks = ShapleyKernelSampler(n, paired=True).sample(m, batch_size=batch, generator=g)
    values = constant.unsqueeze(1) + masks.double() @ coefficients  # v(S) of an additive surrogate
    return coefficients, constant, masks, values


def pairwise_game(n: int, k: int, generator: torch.Generator):
    """A random game with pairwise interactions, its exact Shapley values, v(N) and v(empty)."""
    game = PairwiseInteractionGame(
        torch.randn(n, k, dtype=torch.float64, generator=generator),
        torch.randn(n, n, k, dtype=torch.float64, generator=generator),
    )
    full = game(torch.ones(1, n, dtype=torch.bool))[0]
    empty = game(torch.zeros(1, n, dtype=torch.bool))[0]
    return game, exact_shapley(game, n), full, empty


def test_fastshap_loss_is_zero_at_true_values_of_an_additive_surrogate_and_positive_elsewhere():
    phi, v_empty, masks, values = additive_setup()
    assert fastshap_loss(phi, masks, values, v_empty).item() < 1e-20
    perturbed = phi + 0.01 * torch.randn_like(phi)
    assert fastshap_loss(perturbed, masks, values, v_empty).item() > 1e-6


def test_fastshap_gradient_points_to_shapley_values_after_normalization():
    n, k = 6, 2
    g = torch.Generator().manual_seed(1)
    game, truth, full, empty = pairwise_game(n, k, g)
    masks = ShapleyKernelSampler(n, paired=True).sample(20000, generator=g)
    values = game(masks)
    raw = torch.zeros(1, n, k, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.05)
    for _ in range(300):
        phi = additive_efficient_normalization(raw, full, empty)
        loss = fastshap_loss(phi, masks.unsqueeze(0), values.unsqueeze(0), empty)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.testing.assert_close(
        additive_efficient_normalization(raw, full, empty)[0].detach(), truth, rtol=0, atol=0.02
    )


def test_simshap_target_over_many_masks_equals_exact_values():
    n, k = 8, 3
    g = torch.Generator().manual_seed(2)
    game, truth, full, empty = pairwise_game(n, k, g)
    masks = ShapleyKernelSampler(n, paired=True).sample(200000, generator=g)
    # The loss is minimised by the target, and the target converges to the exact values.
    phi = truth.unsqueeze(0)
    loss_at_truth = simshap_loss(phi, masks.unsqueeze(0), game(masks).unsqueeze(0), full, empty)
    from shapvision.shapley import sim_semivalue_target

    target = sim_semivalue_target(masks, game(masks), full, empty)
    torch.testing.assert_close(target, truth, rtol=0, atol=0.05)
    assert loss_at_truth.item() == (target - truth).pow(2).mean().item()


def test_salvage_loss_is_zero_when_the_shapley_distribution_matches_v():
    batch, n, k, m = 2, 6, 3, 10
    g = torch.Generator().manual_seed(3)
    phi_plus, phi_minus = (
        torch.randn(batch, n, k, generator=g),
        torch.randn(batch, n, k, generator=g),
    )
    masks = ShapleyKernelSampler(n).sample(m, batch_size=batch, generator=g)
    z = masks.float()
    values = torch.softmax(
        z @ phi_plus + (1 - z) @ phi_minus, -1
    )  # a surrogate that is exactly log-additive
    assert salvage_loss(phi_plus, phi_minus, masks, values).item() < 1e-6
    assert salvage_loss(phi_plus.flip(1), phi_minus, masks, values).item() > 1e-3


def test_jensen_shannon_hand_values():
    p = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.0, 1.0]])
    assert abs(jensen_shannon(p, q).item() - torch.log(torch.tensor(2.0)).item()) < 1e-5
    assert jensen_shannon(p, p).item() < 1e-6


def test_surrogate_kl_is_zero_for_equal_logits_and_matches_hand_value():
    logits = torch.tensor([[2.0, 0.0]])
    assert surrogate_kl_loss(logits, logits).item() < 1e-7
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    expected = (p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum()
    assert abs(surrogate_kl_loss(torch.zeros(1, 2), logits).item() - expected.item()) < 1e-6


def test_svo_loss_is_zero_for_a_model_additive_over_patches():
    phi, _, masks, _ = additive_setup(seed=4)
    masked_values = masks.double() @ phi  # v(S) = sum of the (unchanged) votes of kept patches
    classes = torch.randint(0, phi.shape[2], masks.shape[:2])
    assert svo_shapley_loss(phi, masked_values, masks, classes).item() < 1e-20
    assert svo_shapley_loss(phi, masked_values + 0.1, masks, None).item() > 1e-3


def test_weight_decay_spares_norms_biases_and_position_embeddings():
    from types import SimpleNamespace

    from shapvision.modules import Classifier

    model = Classifier(
        backbone="vit_tiny_patch16_224",
        backbone_kwargs={"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
        num_classes=3,
        img_size=32,
        weight_decay=0.05,
    )
    model._trainer = SimpleNamespace(estimated_stepping_batches=10)
    optimizer = model.configure_optimizers()["optimizer"]
    names = {id(p): n for n, p in model.named_parameters()}
    by_decay = {
        g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups
    }
    decay, no_decay = by_decay[0.05], by_decay[0.0]
    assert "net.backbone.model.pos_embed" in no_decay and "net.backbone.model.cls_token" in no_decay
    assert "net.head.bias" in no_decay and "net.backbone.model.norm.weight" in no_decay
    assert "net.head.weight" in decay and "net.backbone.model.blocks.0.attn.qkv.weight" in decay
    assert decay | no_decay == set(names.values())


def test_explainer_objectives_own_outputs_attributions_masks_and_links():
    from shapvision.objectives import FastSHAP, Salvage, SimSHAP

    torch.manual_seed(0)
    raw, v_full, v_empty = torch.randn(2, 6, 3), torch.rand(2, 3), torch.rand(2, 3)
    fast, sim = FastSHAP(num_masks=4), SimSHAP(num_masks=4, activation="identity")
    for objective in (fast, sim):
        objective.bind(6)
        assert objective.num_outputs(3) == 3 and not objective.classifies
        assert objective.sample_masks(raw, v_full, v_empty).shape == (2, 4, 6)
    torch.testing.assert_close(fast.attributions(raw, v_full, v_empty).sum(1), v_full - v_empty)
    torch.testing.assert_close(sim.attributions(raw, v_full, v_empty), raw)

    salvage = Salvage(num_masks=4, guided_temperature=1e-3)
    salvage.bind(6)
    assert salvage.num_outputs(3) == 6 and salvage.guided_fraction == 1.0 and salvage.classifies
    raw = torch.zeros(2, 6, 6)
    raw[:, 2, 0] = 5.0  # phi+ of patch 2 for class 0 stands out
    torch.testing.assert_close(salvage.classify(raw), raw[..., :3].sum(1))
    masks = salvage.sample_masks(raw, torch.tensor([[0.9, 0.05, 0.05]] * 2), v_empty)
    # all masks guided and paired: a +phi draw (keeps patch 2), then its complement
    assert masks[:, ::2, 2].all() and not masks[:, 1::2, 2].any()
    with pytest.raises(ValueError, match="link must be softmax"):
        salvage.check_link("sigmoid")
    with pytest.raises(ValueError, match="even with paired=true"):
        FastSHAP(num_masks=3)


def all_coalitions(n: int) -> torch.Tensor:
    codes = torch.arange(2**n)
    return (codes.unsqueeze(1) >> torch.arange(n)) & 1 == 1


def salvage_with_weights(n: int, guided_fraction: float, weights: str, paired: bool = True):
    salvage = Salvage(
        num_masks=8,
        paired=paired,
        guided_fraction=guided_fraction,
        guided_temperature=0.5,
        importance_weights=weights,
    )
    salvage.bind(n)
    return salvage


@pytest.mark.parametrize("guided_fraction", [0.5, 1.0])
def test_salvage_importance_weights_turn_the_guided_expectation_into_the_kernels(guided_fraction):
    """N = 6, every coalition enumerated: sum_S q(S) w(S) L(S) = sum_S p_kernel(S) L(S)."""
    n = 6
    torch.manual_seed(0)
    raw, v_full = torch.randn(1, n, 4), torch.tensor([[0.7, 0.3]])
    masks = all_coalitions(n)[1:-1].unsqueeze(0)  # the kernel gives the empty and full sets 0
    loss_terms = torch.rand(masks.shape[1], dtype=torch.float64)  # any per-mask loss L(S)
    salvage = salvage_with_weights(n, guided_fraction, "exact")
    scores = salvage.guidance_scores(raw, v_full, None)
    kernel = shapley_kernel_log_prob(masks[0]).exp()
    proposal = guided_fraction * salvage.guided_sampler.log_prob(scores, masks)[0].exp()
    proposal = proposal + (1 - guided_fraction) * kernel
    assert proposal.sum().item() == pytest.approx(1.0, abs=1e-9)
    weights = salvage.mask_weights(raw, masks, v_full, None)[0].double()
    target = (kernel * loss_terms).sum()
    assert (proposal * weights * loss_terms).sum().item() == pytest.approx(target.item(), abs=1e-6)
    unweighted = salvage_with_weights(n, guided_fraction, "none")
    assert unweighted.mask_weights(raw, masks, v_full, None) is None
    assert abs((proposal * loss_terms).sum().item() - target.item()) > 1e-3  # weights matter


def test_salvage_guided_paired_draws_follow_the_proposal_and_reweight_to_the_kernel():
    """Paired guided masks (each with its complement) are distributed as q; weighted sample means
    of a loss converge to its Shapley-kernel expectation, unweighted ones do not."""
    n, draws = 6, 40000
    torch.manual_seed(1)
    raw, v_full = torch.randn(1, n, 4), torch.tensor([[0.7, 0.3]])
    salvage = salvage_with_weights(n, 1.0, "exact")
    salvage.num_masks = draws
    masks = salvage.sample_masks(raw, v_full, None)
    assert torch.equal(masks[0, 1::2], ~masks[0, ::2])  # each mask followed by its complement
    codes = (masks[0].long() << torch.arange(n)).sum(1)
    loss_by_code = torch.rand(2**n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    subsets = all_coalitions(n)[1:-1]
    target = (shapley_kernel_log_prob(subsets).exp() * loss_by_code[1:-1]).sum().item()
    weights = salvage.mask_weights(raw, masks, v_full, None)[0].double()
    weighted = (weights * loss_by_code[codes]).mean().item()
    unweighted = loss_by_code[codes].mean().item()
    assert weighted == pytest.approx(target, abs=0.012)
    assert abs(unweighted - target) > 2 * abs(weighted - target)


def test_conditional_bernoulli_draws_match_their_tractable_probability():
    n = 5
    log_w = torch.tensor([[0.0, 1.0, -1.0, 2.0, 0.5]])
    sizes = torch.full((1, 20000), 2)
    masks = conditional_bernoulli_subsets(log_w, sizes, torch.Generator().manual_seed(0))
    assert (masks.sum(-1) == 2).all()
    subsets = all_coalitions(n)
    subsets = subsets[subsets.sum(1) == 2].unsqueeze(0)
    probability = conditional_bernoulli_log_prob(log_w, subsets)[0].exp()
    w = log_w[0].exp().double()
    by_hand = torch.stack([w[s].prod() for s in subsets[0]])
    torch.testing.assert_close(probability, by_hand / by_hand.sum())
    codes = (masks[0].long() << torch.arange(n)).sum(1)
    frequency = torch.bincount(codes, minlength=2**n).double() / masks.shape[1]
    expected = torch.zeros(2**n, dtype=torch.float64)
    expected[(subsets[0].long() << torch.arange(n)).sum(1)] = probability
    assert (frequency - expected).abs().max() < 0.015
