"""Explanation methods on a model whose answer is known, and methods refused where they do not apply."""

import pytest
import torch

from shapvision.attribution import ExplainedModel, UnsupportedBackbone, create_method
from shapvision.attribution.attention_capture import captured_attention
from shapvision.modules import Classifier

from .helpers import RELEVANT, OnePatchClassifier

FAITHFUL = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 16},
    "smoothgrad": {"samples": 8},
    "leave_one_out": {},
    "kernelshap": {"budget": 128, "batch_size": 64},
    "idgi": {"n_steps": 16},
}


@pytest.fixture(scope="module")
def one_patch():
    """12 images and, for each, a class for which the relevant patch is evidence: its logit and its
    probability are both higher with the patch than with the patch removed (zeroed, the baseline of
    IG, leave-one-out and KernelSHAP), and its logit is positive (LRP conserves the logit itself),
    so every signed method must give that patch the top value."""
    model = ExplainedModel(OnePatchClassifier(), "one-patch classifier")
    images = torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logit_gain = model.logits(images) - model.logits(torch.zeros_like(images))
        probability_gain = model.logits(images).softmax(-1) - model.logits(
            torch.zeros_like(images)
        ).softmax(-1)
    target = logit_gain.argmax(-1)
    evidence = (
        (logit_gain.gather(1, target[:, None]) > 0)
        & (probability_gain.gather(1, target[:, None]) > 0)
        & (model.logits(images).detach().gather(1, target[:, None]) > 0)
    )
    chosen = evidence[:, 0].nonzero()[:12, 0]
    assert len(chosen) == 12
    return model, images[chosen], target[chosen], torch.arange(12)


@pytest.mark.parametrize("name", sorted(FAITHFUL))
def test_faithful_methods_rank_the_only_relevant_patch_first(one_patch, name):
    model, images, target, index = one_patch
    method = create_method(name, model, **FAITHFUL[name])
    values = method.explain(images, target, index).patches
    assert values.shape == (12, 16)
    # Ranked the way the metrics rank: by the value itself (higher = more evidence or importance).
    assert (values.argmax(1) == RELEVANT).all(), values.argmax(1)


@pytest.mark.parametrize("output", ["logit", "probability"])
def test_idgi_is_complete_and_puts_everything_on_the_relevant_patch(one_patch, output):
    """IDGI shares each path step's output change by squared gradient: the attributions add up to
    f(x) - f(baseline) exactly, whatever the number of steps, and only the relevant patch has a
    gradient, so it gets all of it."""
    model, images, target, index = one_patch
    values = create_method("idgi", model, n_steps=5, output=output).explain(images, target, index)
    with torch.no_grad():
        scores, empty = model.logits(images), model.logits(torch.zeros_like(images))
        if output == "probability":
            scores, empty = scores.softmax(-1), empty.softmax(-1)
    gain = (scores - empty).gather(1, target.view(-1, 1))[:, 0]
    torch.testing.assert_close(values.pixels.sum((1, 2)), gain, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(values.patches[:, RELEVANT], gain, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="idgi: output must be one of"):
        create_method("idgi", model, output="logits")


def test_lrp_gives_relevance_to_the_relevant_patch_alone_whatever_its_sign(one_patch):
    """zennit's epsilon rule lets the biases absorb relevance, so on this tanh model the relevant
    patch's total can be negative although the patch raises the target's logit: LRP's values are
    signed by convention but not ranked first here; every other patch gets exactly none."""
    model, images, target, index = one_patch
    values = create_method("lrp", model).explain(images, target, index).patches
    others = torch.cat([values[:, :RELEVANT], values[:, RELEVANT + 1 :]], 1)
    assert (others == 0).all() and (values[:, RELEVANT] != 0).all()


def test_rise_singles_out_the_relevant_patch_on_average(one_patch):
    """RISE's masks are bilinear and shifted, so neighbouring patches share part of the relevant patch's
    signal and single images can tie; over the images the relevant patch stands out the most."""
    model, images, target, index = one_patch
    method = create_method("rise", model, num_masks=4000, cells=4, batch_size=1000)
    values = method.explain(images, target, index).patches
    standout = (values - values.median(1, keepdim=True).values).abs().mean(0)
    assert standout.argmax() == RELEVANT
    assert standout[RELEVANT] > 1.4 * standout.sort(descending=True).values[1]


def test_random_ranks_the_relevant_patch_first_only_by_chance(one_patch):
    model, _, _, _ = one_patch
    images = torch.randn(400, 3, 32, 32)
    method = create_method("random", model)
    top = method.explain(
        images, torch.zeros(400, dtype=torch.long), torch.arange(400)
    ).patches.argmax(1)
    assert (top == RELEVANT).float().mean() < 0.15  # chance: 1 / 16
    again = method.explain(images[:5], torch.zeros(5, dtype=torch.long), torch.arange(5)).patches
    torch.testing.assert_close(
        again, method.explain(images[:5], torch.zeros(5, dtype=torch.long), torch.arange(5)).patches
    )


def tiny_classifier(backbone, **kwargs):
    return ExplainedModel(
        Classifier(backbone=backbone, num_classes=4, img_size=32, **kwargs).eval(), "checkpoint"
    )


def test_attention_methods_are_refused_on_a_resnet_naming_both():
    model = tiny_classifier("resnet18")
    for name in ("rollout", "attention_last", "game", "attcat", "chefer_lrp"):
        with pytest.raises(
            UnsupportedBackbone, match=rf"method '{name}' does not apply to .*TimmResNetBackbone"
        ):
            create_method(name, model)
    with pytest.raises(
        ValueError, match=r"method 'svo' explains a self-explaining classifier .* is a Classifier"
    ):
        create_method("svo", model)
    with pytest.raises(ValueError, match=r"unknown explanation method 'shap'.*known: .*kernelshap"):
        create_method("shap", model)
    with pytest.raises(ValueError, match=r"bad options for method 'rise'"):
        create_method("rise", model, masks=10)


def test_vit_attention_methods_read_the_cls_row_of_captured_attention():
    model = tiny_classifier(
        "vit_tiny_patch16_224",
        backbone_kwargs={"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
    )
    images = torch.randn(2, 3, 32, 32)
    target = torch.tensor([0, 1])
    last = create_method("attention_last", model).explain(images, target).patches
    assert (
        last.shape == (2, 16) and (last > 0).all() and (last.sum(1) < 1).all()
    )  # CLS row minus itself
    rollout = create_method("rollout", model, start_layer=0).explain(images, target).patches
    assert rollout.shape == (2, 16) and (rollout > 0).all()
    assert all(
        block.attn.fused_attn == block.attn.fused_attn for block in model.backbone.model.blocks
    )
    for name in ("game", "gradcam", "eigencam"):
        result = create_method(name, model).explain(images, target)
        assert result.patches.shape == (2, 16) and torch.isfinite(result.patches).all()


def test_attcat_is_the_cls_attention_weighted_effect_of_scaling_each_token():
    """AttCAT's class activation of token i at block l, sum_d h_{i,d} dy/dh_{i,d}, is the derivative
    of the target's logit with respect to a factor scaling that token's output (at 1): computed
    here through such factors, weighted by the CLS row of the head-mean attention, summed over blocks."""
    model = tiny_classifier(
        "vit_tiny_patch16_224",
        backbone_kwargs={"patch_size": 8, "embed_dim": 32, "depth": 3, "num_heads": 2},
    )
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 2, 1])
    ours = create_method("attcat", model).explain(images, target).patches
    blocks = list(model.backbone.model.blocks)
    scales = [torch.ones(3, 17, 1, requires_grad=True) for _ in blocks]
    hooks = [
        block.register_forward_hook(lambda m, i, out, s=s: out * s)
        for block, s in zip(blocks, scales, strict=True)
    ]
    try:
        with captured_attention(model.backbone) as maps:
            score = model.logits(images).gather(1, target.view(-1, 1)).sum()
            activations = torch.autograd.grad(score, scales)
    finally:
        for hook in hooks:
            hook.remove()
    expected = sum(
        a.detach().mean(1)[:, 0, :] * g[..., 0] for a, g in zip(maps, activations, strict=True)
    )
    torch.testing.assert_close(ours, expected[:, 1:], atol=1e-5, rtol=1e-4)
    assert (ours < 0).any() and (ours > 0).any()  # signed: evidence for and against
