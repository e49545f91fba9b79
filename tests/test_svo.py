"""SVO-ViT / SVO-ResNet: efficiency by construction, the Shapley loss, the masked branches, options."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from shapvision.models.cost import measure_cost
from shapvision.models.masked_backbone import MaskedBackbone, pixel_mask
from shapvision.models.patch_features import PatchFeatures
from shapvision.models.svo_net import SVONet
from shapvision.modules import SVOClassifier
from shapvision.shapley.exact import exact_shapley

TINY_VIT = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def svo_vit(**overrides) -> SVOClassifier:
    options = {
        "backbone": "vit_tiny_patch16_224",
        "backbone_kwargs": TINY_VIT,
        "num_classes": 5,
        "img_size": 32,
        "num_masks": 4,
        "paired": True,
        **overrides,
    }
    return SVOClassifier(**options)


class PatchLocalBackbone(MaskedBackbone):
    """Each token is a function of its own patch's pixels only, so v(S) is additive over patches."""

    def __init__(self, grid=(4, 4), patch=8, channels=3, dim=16):
        super().__init__()
        self.grid_size, self.patch_size, self.embed_dim = grid, patch, dim
        self.embed = nn.Sequential(nn.Linear(channels * patch * patch, dim), nn.Tanh())

    def forward_patches(self, images, keep=None):
        keep = self.validate_inputs(images, keep)
        patches = F.unfold(images, self.patch_size, stride=self.patch_size).transpose(1, 2)
        tokens = self.embed(patches) * keep.unsqueeze(2).to(images.dtype)
        return PatchFeatures(tokens=tokens, keep=keep)


def additive_svo(**overrides) -> SVOClassifier:
    """A 3 x 3 grid (24 px), so that exact values over 2^9 coalitions are quick."""
    module = svo_vit(img_size=24, **overrides)
    module.net.backbone = PatchLocalBackbone(grid=(3, 3))
    module.net.head = type(module.net.head)(16, 5)
    return module


def test_efficiency_explain_sums_to_logits_full_and_masked():
    torch.manual_seed(0)
    module = svo_vit().eval()
    images = torch.randn(6, 3, 32, 32)
    keep = torch.rand(6, 16) < 0.5
    keep[0] = False
    with torch.no_grad():
        phi = module.explain(images)
        assert phi.shape == (6, 16, 5)
        torch.testing.assert_close(phi.sum(1), module(images), atol=1e-5, rtol=1e-5)
        masked_phi = module.net(images, keep)
        assert (masked_phi[~keep] == 0).all()
        torch.testing.assert_close(masked_phi.sum(1), module(images, keep))
        assert (module(images[:1], keep[:1]) == 0).all(), "v(empty) must be 0 by construction"


def test_masked_logits_match_one_forward_per_mask():
    torch.manual_seed(1)
    module = svo_vit().eval()
    images = torch.randn(3, 3, 32, 32)
    masks = torch.rand(3, 4, 16) < 0.5
    with torch.no_grad():
        batched = module.net.masked_logits(images, masks)
        for b in range(3):
            for m in range(4):
                one = module(images[b : b + 1], masks[b, m : m + 1])[0]
                torch.testing.assert_close(batched[b, m], one, atol=1e-5, rtol=1e-5)


def test_lambda_zero_is_a_plain_classifier(monkeypatch):
    torch.manual_seed(2)
    module = svo_vit(shapley_weight=0.0)
    module.log = lambda *args, **kwargs: None

    def no_masked_forward(*args, **kwargs):
        raise AssertionError("lambda = 0 must not run the masked branch")

    monkeypatch.setattr(module.net, "masked_logits", no_masked_forward)
    images, labels = torch.randn(8, 3, 32, 32), torch.randint(5, (8,))
    loss = module.training_step({"image": images, "label": labels}, 0)
    grads = torch.autograd.grad(loss, list(module.net.parameters()), allow_unused=True)
    expected = F.cross_entropy(module.net(images).sum(1), labels)
    expected_grads = torch.autograd.grad(expected, list(module.net.parameters()), allow_unused=True)
    torch.testing.assert_close(loss, expected)
    for got, want in zip(grads, expected_grads, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("balance", [True, False])
def test_one_unpaired_mask_per_image_runs_half_the_patches_when_balanced(monkeypatch, balance):
    """The default training draw: the masked branch's kept patches total N/2 per image, every step."""
    torch.manual_seed(3)
    module = svo_vit(num_masks=1, paired=False, balance_mask_sizes=balance)
    module.log = lambda *args, **kwargs: None
    kept = []
    masked_logits = module.net.masked_logits

    def recording_masked_logits(images, masks):
        kept.append(int(masks.sum()))
        return masked_logits(images, masks)

    monkeypatch.setattr(module.net, "masked_logits", recording_masked_logits)
    images, labels = torch.randn(8, 3, 32, 32), torch.randint(5, (8,))
    for _ in range(4):
        module.training_step({"image": images, "label": labels}, 0)
    half = 8 * module.num_patches // 2
    assert (kept == [half] * 4) == balance


@pytest.mark.parametrize("classes", ["sampled", "all"])
def test_shapley_loss_is_zero_for_an_additive_model_and_not_for_a_vit(classes):
    torch.manual_seed(3)
    images = torch.randn(4, 3, 24, 24)
    additive = additive_svo(shapley_classes=classes)
    loss = additive.shapley_loss(images, additive.explain(images))
    assert loss.item() < 1e-12
    vit = svo_vit(img_size=24, shapley_classes=classes)
    assert vit.shapley_loss(images, vit.explain(images)).item() > 1e-6


def test_additive_model_explains_itself_exactly():
    """The model's own logit game (the evaluation's ``link: identity``): its exact values are Phi."""
    torch.manual_seed(4)
    module = additive_svo().eval()
    image = torch.randn(3, 24, 24)

    def own_game(masks):
        return module(image.unsqueeze(0).expand(masks.shape[0], -1, -1, -1), masks).double()

    with torch.no_grad():
        exact = exact_shapley(own_game, 9)
        phi = module.explain(image.unsqueeze(0))[0]
    torch.testing.assert_close(exact.float(), phi, atol=1e-5, rtol=1e-4)


def test_stop_gradient_splits_the_gradient_between_the_two_sides():
    """d(a - b)^2 = 2(a - b)(da - db): the 'full' and 'masked' gradients sum to the 'none' gradient."""
    images = torch.randn(4, 3, 32, 32)
    grads = {}
    for stop in ("none", "masked", "full"):
        torch.manual_seed(5)
        module = svo_vit(stop_gradient=stop, shapley_classes="all")
        torch.manual_seed(6)
        loss = module.shapley_loss(images, module.explain(images))
        params = list(module.net.parameters())
        grads[stop] = torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).flatten()
                for g, p in zip(
                    torch.autograd.grad(loss, params, allow_unused=True), params, strict=True
                )
            ]
        )
    torch.testing.assert_close(grads["masked"] + grads["full"], grads["none"], atol=1e-6, rtol=1e-4)
    assert grads["masked"].norm() > 0 and grads["full"].norm() > 0


def test_resnet_masked_branch_gathers_the_kept_cells():
    torch.manual_seed(7)
    net = SVONet("resnet18", num_classes=3, img_size=64).eval()
    assert net.backbone.grid_size == (4, 4)
    images = torch.randn(2, 3, 64, 64)
    everything = torch.ones(2, 16, dtype=torch.bool)
    keep = torch.rand(2, 16) < 0.5
    with torch.no_grad():
        full = net(images)
        torch.testing.assert_close(net(images, everything), full)
        masked = net(images, keep)
        zeroed = images * pixel_mask(keep, (4, 4), 16).to(images.dtype)
        unmasked_on_zeroed = net(zeroed)
    torch.testing.assert_close(masked[keep], unmasked_on_zeroed[keep])
    assert (masked[~keep] == 0).all()
    assert not torch.allclose(masked[keep], full[keep]), "the removed pixels must be zeroed"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"stop_gradient": "target"}, "stop_gradient must be one of"),
        ({"shapley_classes": "top"}, "shapley_classes must be one of"),
        ({"shapley_weight": -1.0}, "shapley_weight"),
        ({"num_masks": 3, "paired": True}, "even with paired=true"),
        ({"num_masks": 0, "paired": False}, "num_masks must be >= 1"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        svo_vit(**options)


def test_ddp_ranks_draw_independent_masks_after_seed_everything():
    """seed_everything seeds every rank alike; on_fit_start offsets the seed by rank (not for one process)."""
    from types import SimpleNamespace

    module = svo_vit()

    def masks_on(rank: int, world_size: int) -> torch.Tensor:
        torch.manual_seed(0)
        module._trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        module.on_fit_start()
        return module.objective.sampler.sample(4, batch_size=8)

    single, rank0, rank1 = masks_on(0, 1), masks_on(0, 2), masks_on(1, 2)
    torch.manual_seed(0)
    assert torch.equal(single, module.objective.sampler.sample(4, batch_size=8))
    assert torch.equal(rank0, single)
    assert not torch.equal(rank1, rank0)


def test_drop_cls_token_runs_patch_tokens_only_and_stays_efficient():

    tiny = {"patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
    model = SVOClassifier(
        backbone="vit_tiny_patch16_224",
        backbone_kwargs=tiny,
        num_classes=4,
        img_size=32,
    ).eval()  # the default is the paper's: CLS dropped
    seen = []
    model.net.backbone.model.blocks[0].register_forward_hook(
        lambda m, i, o: seen.append(i[0].shape[1])
    )
    images, keep = torch.randn(2, 3, 32, 32), torch.rand(2, 16) > 0.5
    with torch.no_grad():
        phi = model.explain(images)
        torch.testing.assert_close(phi.sum(1), model(images), atol=1e-5, rtol=1e-5)
        masked = model(images, keep)
        per_image = torch.stack([model(images[i : i + 1], keep[i : i + 1])[0] for i in range(2)])
    assert seen[0] == 16  # no CLS token in the sequence
    torch.testing.assert_close(masked, per_image, atol=1e-5, rtol=1e-5)
    with pytest.raises(
        ValueError, match="drop_prefix_tokens applies to transformer backbones, not 'resnet18'"
    ):
        SVOClassifier(backbone="resnet18", num_classes=4, img_size=32, drop_cls_token=True)


def test_measured_cost_of_a_convolution_by_hand():
    conv = torch.nn.Conv2d(3, 5, kernel_size=2, stride=2)
    cost = measure_cost(conv, conv, img_size=4)
    # 5 x 2 x 2 outputs, each 3 x 2 x 2 multiply-adds; 5 x 12 weights + 5 biases
    assert cost.flops == 2 * 5 * 2 * 2 * 12 and cost.multiply_adds == 240
    assert cost.parameters == 65


@pytest.mark.slow  # builds ViT-B/16 and ResNet-50 at 224: about 10 s
def test_svo_table_1_parameters_and_flops_match_the_paper_at_224():
    """SVO Table 1: Ours-V 86M / 17.6B, Ours-R 26M / 6.6B (multiply-adds), measured on our models."""

    for backbone, params_m, gmacs in (("vit_base_patch16_224", 86, 17.6), ("resnet50", 26, 6.6)):
        model = SVOClassifier(backbone=backbone, num_classes=1000, img_size=224).eval()
        cost = measure_cost(model, model.explain, 224)
        assert cost.parameters / 1e6 == pytest.approx(params_m, abs=0.6)
        assert cost.multiply_adds / 1e9 == pytest.approx(gmacs, abs=0.05)
