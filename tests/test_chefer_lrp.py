"""CheferLRP (Chefer et al., CVPR 2021): its relevance rules against the reference's autograd
formulation and their conservation, and the map on a ViT whose CLS token reads one patch only."""

import pytest
import torch

from shapvision.attribution import ExplainedModel, create_method
from shapvision.attribution.chefer_lrp import (
    linear_relevance,
    matmul_relevance,
    residual_relevance,
    safe_divide,
)
from shapvision.modules import Classifier, SVOClassifier

from .helpers import RELEVANT


def reference_alpha1_beta0(x, weight, relevance):
    """layers_ours.Linear.relprop with alpha = 1, written as the reference does: autograd of Z."""
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    px = x.clamp(min=0).detach().requires_grad_(True)
    nx = x.clamp(max=0).detach().requires_grad_(True)
    z1, z2 = px @ pw.T, nx @ nw.T
    s = safe_divide(relevance, z1 + z2)
    c1 = px * torch.autograd.grad(z1, px, s)[0]
    c2 = nx * torch.autograd.grad(z2, nx, s)[0]
    return (c1 + c2).detach()


def test_the_linear_rule_is_the_references_and_conserves_relevance():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 8, generator=generator)
    weight = torch.randn(6, 8, generator=generator)
    relevance = torch.rand(3, 5, 6, generator=generator)
    ours = linear_relevance(x, weight, relevance)
    assert torch.allclose(ours, reference_alpha1_beta0(x, weight, relevance), atol=1e-5)
    # an output hands all its relevance down to its positive contributions; one with none loses it
    z = x.clamp(min=0) @ weight.clamp(min=0).T + x.clamp(max=0) @ weight.clamp(max=0).T
    assert (z == 0).any() and (z > 0).any()
    assert torch.allclose(ours.sum(-1), (relevance * (z > 0)).sum(-1), atol=1e-4)
    assert (ours >= 0).all()  # alpha1-beta0: positive relevance stays positive


def test_the_residual_rule_conserves_per_image_and_shares_by_magnitude():
    x = torch.tensor([[[2.0, 1.0]], [[1.0, 1.0]]])
    branch = torch.tensor([[[1.0, 1.0]], [[-3.0, 1.0]]])
    relevance = torch.tensor([[[3.0, 1.0]], [[1.0, 2.0]]])
    a, b = residual_relevance(x, branch, relevance)
    assert torch.allclose((a + b).sum((1, 2)), relevance.sum((1, 2)))
    # image 0: z-rule gives a = (2, 0.5), b = (1, 0.5): shares 2.5 : 1.5 of the total 4
    assert torch.allclose(a[0], torch.tensor([[2.0, 0.5]])) and torch.allclose(
        b[0], torch.tensor([[1.0, 0.5]])
    )
    # image 1: z = (-2, 2); a = (-0.5, 1), b = (1.5, 1): |sums| 0.5 and 2.5 share the total 3
    assert a[1].sum() == pytest.approx(0.5) and b[1].sum() == pytest.approx(2.5)


def test_the_matmul_rule_halves_the_relevance_for_each_operand():
    generator = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 4, 3, generator=generator), torch.rand(2, 3, 5, generator=generator)
    relevance = torch.rand(2, 4, 5, generator=generator)
    to_a, to_b = matmul_relevance(a, b, relevance)
    assert to_a.shape == a.shape and to_b.shape == b.shape
    assert torch.allclose(to_a.sum(), relevance.sum() / 2) and torch.allclose(
        to_b.sum(), relevance.sum() / 2
    )


def one_patch_vit():
    """A one-block ViT whose CLS token attends to patch RELEVANT only: its query reads a marker the CLS
    token carries, every key a marker only that patch's position embedding carries. The head reads the
    CLS output, so the logits depend on that patch alone."""
    torch.manual_seed(0)
    options = {"patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 1}
    module = Classifier(
        backbone="vit_tiny_patch16_224", num_classes=3, img_size=32, backbone_kwargs=options
    )
    vit = module.net.backbone.model
    with torch.no_grad():
        vit.pos_embed.zero_()
        vit.pos_embed[0, 1 + RELEVANT, 0] = 10.0
        vit.cls_token.zero_()
        vit.cls_token[0, 0, 1] = 10.0
        block = vit.blocks[0]
        block.attn.qkv.weight.zero_()
        block.attn.qkv.bias.zero_()
        block.attn.qkv.weight[0, 1] = 8.0  # q_0 = the CLS marker
        block.attn.qkv.weight[16, 0] = 8.0  # k_0 = the patch marker
        block.attn.qkv.weight[32:] = torch.eye(16)  # v = the normed token
        block.attn.proj.weight.copy_(torch.eye(16))
        block.mlp.fc2.weight.zero_()
    # frozen, as the evaluation loads it: the attention gradients must not need trainable weights
    return ExplainedModel(module.eval().requires_grad_(False), "the one-patch ViT")


def test_chefer_lrp_finds_the_one_patch_the_cls_token_reads():
    """For every class, the map is that one patch, or empty where the patch argues against the class
    (the rollout keeps positive gradient x relevance only)."""
    model = one_patch_vit()
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    method = create_method("chefer_lrp", model)
    found = torch.zeros(4, dtype=torch.bool)
    for target in range(3):
        values = method.explain(images, torch.full((4,), target)).patches
        assert values.shape == (4, 16) and (values >= 0).all()
        others = torch.cat([values[:, :RELEVANT], values[:, RELEVANT + 1 :]], 1)
        assert (others == 0).all()
        found |= values[:, RELEVANT] > 0
    assert found.all()


def test_chefer_lrp_is_refused_without_a_linear_cls_head():
    options = {"patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}
    pooled = Classifier(
        backbone="vit_tiny_patch16_224",
        num_classes=3,
        img_size=32,
        backbone_kwargs={**options, "global_pool": "avg"},
    )
    with pytest.raises(
        ValueError, match="propagates relevance from a linear head on the CLS token"
    ):
        create_method("chefer_lrp", ExplainedModel(pooled.eval(), "a mean-pooled ViT"))
    svo = SVOClassifier(
        backbone="vit_tiny_patch16_224", num_classes=3, img_size=32, backbone_kwargs=options
    )
    with pytest.raises(ValueError, match="method 'chefer_lrp' reads the CLS row of the attention"):
        create_method("chefer_lrp", ExplainedModel(svo.eval(), "SVO-ViT"))


def test_chefer_lrp_explains_each_image_of_a_batch_on_its_own():
    """The reference runs one image at a time; its residual rule sums over the tensor, ours per image."""
    torch.manual_seed(4)
    options = {"patch_size": 8, "embed_dim": 16, "depth": 3, "num_heads": 2}
    module = Classifier(
        backbone="vit_tiny_patch16_224", num_classes=3, img_size=32, backbone_kwargs=options
    )
    method = create_method("chefer_lrp", ExplainedModel(module.eval(), "a 3-block ViT"))
    images, target = torch.randn(3, 3, 32, 32), torch.tensor([0, 2, 1])
    together = method.explain(images, target).patches
    alone = torch.cat(
        [method.explain(images[i : i + 1], target[i : i + 1]).patches for i in range(3)]
    )
    assert torch.allclose(together, alone, atol=1e-6) and (together > 0).any()
