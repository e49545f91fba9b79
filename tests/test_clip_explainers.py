"""The training-free CLIP explainers of SVO Tables 5-6 (MaskCLIP, CLIP Surgery, Grad-ECLIP) and M2IB,
on open_clip's own VisionTransformer (the tiny digits CLIP) and on EVA02's timm trunk."""

import pytest
import torch
import torch.nn.functional as F

from shapvision.attribution import ExplainedModel, UnsupportedBackbone, create_method
from shapvision.attribution.caption_model import CaptionExplainedModel
from shapvision.attribution.clip_vision_blocks import (
    VisionTowerBlocks,
    attend,
    merge_heads,
    split_heads,
)
from shapvision.attribution.m2ib import gaussian_kl_to_standard
from shapvision.modules import SVOCLIP, CLIPFineTune

from .helpers import OnePatchClassifier

TINY = {"clip_model": "shapvision-digits-clip", "img_size": 32}
EVA = {"clip_model": "EVA02-B-16", "img_size": 32, "vision_depth": 2, "text_depth": 1}
TOWERS = {"open_clip": TINY, "eva02": EVA}
CLIP_METHODS = ("maskclip", "clip_surgery", "grad_eclip", "m2ib")


def explained(options, captions=("a one", "a seven", "a three")):
    torch.manual_seed(0)
    module = CLIPFineTune(**options).eval().requires_grad_(False)
    model = CaptionExplainedModel(module, options["clip_model"])
    with torch.no_grad():
        model.set_captions(module.text_features(module.tokenize(list(captions))))
    return model


@pytest.fixture(scope="module", params=sorted(TOWERS))
def clip(request):
    return explained(TOWERS[request.param])


def images(count=2, size=32):
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_the_opened_blocks_are_the_towers_own_forward(clip):
    tower = VisionTowerBlocks(clip, "test")
    x, rope = tower.embed(images())
    for block in tower.blocks:
        from_parts = tower.block_forward(block, x, rope)
        assert torch.allclose(from_parts, tower.run(x, rope, [block]), atol=1e-5)
        x = from_parts
    expected = clip.module.image_features(images())
    assert torch.allclose(tower.cls_embedding(x), expected, atol=1e-5)


def self_attention_only_last_block(tower, x, rope):
    """The last block run by the model itself with an attention mask that lets a token see only itself."""
    last, tokens = tower.blocks[-1], x.shape[1]
    if tower.eva:
        return last(x, rope=rope, attn_mask=torch.eye(tokens, dtype=torch.bool)[None, None])
    blocked = torch.full((tokens, tokens), float("-inf")).fill_diagonal_(0)
    return last(x, attn_mask=blocked)


def test_maskclip_is_the_last_block_with_self_only_attention(clip):
    tower = VisionTowerBlocks(clip, "test")
    target = torch.tensor([2, 0])
    with torch.no_grad():
        x, rope = tower.embed(images())
        x = self_attention_only_last_block(tower, tower.run(x, rope, tower.blocks[:-1]), rope)
        expected = tower.token_embeddings(x)[:, 1:] @ clip.network.text.T
    values = create_method("maskclip", clip).explain(images(), target).patches
    assert values.shape == (2, clip.num_patches)
    assert torch.allclose(values, expected[torch.arange(2), :, target], atol=1e-5)


def transparent_digits_clip():
    """The tiny CLIP with every attention and MLP output zeroed: each token leaves the tower as it
    entered it, so a patch's embedding depends on that patch's pixels alone."""
    model = explained(TINY)
    for block in model.module.towers.clip.visual.transformer.resblocks:
        for linear in (block.attn.out_proj, block.mlp.c_proj):
            linear.weight.data.zero_()
            linear.bias.data.zero_()
    return model


@pytest.mark.parametrize("name", ["maskclip", "clip_surgery"])
def test_dense_clip_methods_find_the_one_patch_a_caption_names(name):
    """Known answer: captions are the embeddings of patches 5 and 10 of an image of 16 distinct
    patches; each caption's highest patch is the one it names."""
    model = transparent_digits_clip()
    tower = VisionTowerBlocks(model, "test")
    image = images(1)
    with torch.no_grad():
        x, _ = tower.embed(image)
        named = tower.token_embeddings(x)[0, 1:][[5, 10]]
    model.set_captions(named)
    options = {"redundant": "none"} if name == "clip_surgery" else {}
    values = create_method(name, model, **options).explain(
        image.expand(2, -1, -1, -1), torch.tensor([0, 1])
    )
    assert values.patches.argmax(1).tolist() == [5, 10]
    assert torch.allclose(values.patches.max(1).values, torch.ones(2), atol=1e-5)


def dual_path_reference(tower, x, surgery_blocks):
    """CLIP Surgery's dual-path blocks as its reference code writes them for OpenAI's CLIP (list-valued
    block outputs, q = k = v per head), on open_clip's nn.MultiheadAttention."""
    blocks = tower.blocks
    x = tower.run(x, None, blocks[: len(blocks) - surgery_blocks])
    paths = None
    for block in blocks[len(blocks) - surgery_blocks :]:
        original = x if paths is None else paths[1]
        heads, width = block.attn.num_heads, original.shape[-1]
        q, k, v = F.linear(
            block.ln_1(original), block.attn.in_proj_weight, block.attn.in_proj_bias
        ).chunk(3, -1)
        q, k, v = (split_heads(t, heads) for t in (q, k, v))
        scale = (width // heads) ** -0.5
        out_ori = block.attn.out_proj(
            merge_heads(torch.softmax(q @ k.transpose(-1, -2) * scale, -1) @ v)
        )
        out_new = block.attn.out_proj(
            merge_heads(torch.softmax(v @ v.transpose(-1, -2) * scale, -1) @ v)
        )
        new = (x if paths is None else paths[0]) + out_new
        original = original + out_ori
        original = original + block.mlp(block.ln_2(original))
        paths = [new, original]
    new, original = paths
    new[:, 0] = original[:, 0]
    return new


def test_clip_surgery_matches_the_dual_path_reference_and_subtracts_the_empty_caption():
    model = explained(TINY)
    tower = VisionTowerBlocks(model, "test")
    target = torch.tensor([1, 2])
    with torch.no_grad():
        x, _ = tower.embed(images())
        reference = tower.token_embeddings(dual_path_reference(tower, x, 2))[:, 1:]
        empty = model.module.text_features(model.module.tokenize([""]))[0]
    raw = create_method("clip_surgery", model, surgery_blocks=2, redundant="none")
    surgery = create_method("clip_surgery", model, surgery_blocks=2)
    text = model.network.text[target]
    expected = (reference * text.unsqueeze(1)).sum(-1)
    assert torch.allclose(raw.explain(images(), target).patches, expected, atol=1e-5)
    corrected = (reference * (text - empty).unsqueeze(1)).sum(-1)
    assert torch.allclose(surgery.explain(images(), target).patches, corrected, atol=1e-5)
    # the original path is untouched: its CLS is the model's image embedding
    assert torch.allclose(
        tower.cls_embedding(surgery.surgery_tokens(images())),
        model.module.image_features(images()),
        atol=1e-5,
    )


def test_grad_eclip_is_the_first_order_change_of_the_score_along_each_value(clip):
    """Without the key similarity, patch i's value is ReLU of the derivative of cos(image, caption)
    when O's CLS row moves along v_i: checked by finite differences of the one-head forward."""
    tower = VisionTowerBlocks(clip, "test")
    image, target = images(1), torch.tensor([1])
    text = clip.network.text[target]
    last = tower.blocks[-1]
    with torch.no_grad():
        x, rope = tower.embed(image)
        x = tower.run(x, rope, tower.blocks[:-1])
        q, k, v = map(
            merge_heads, tower.queries_keys_values(last, tower.attention_input(last, x), rope)
        )
        o = attend(q, k, v, v.shape[-1] ** -0.5)

        def score(out):
            after = tower.add_mlp(
                last, tower.add_attention(last, x, tower.attention_output(last, out))
            )
            return float((tower.cls_embedding(after) * text).sum())

        step = 1e-2
        derivative = []
        for i in range(1, v.shape[1]):
            moved = o.clone()
            moved[:, 0] += step * v[:, i]
            back = o.clone()
            back[:, 0] -= step * v[:, i]
            derivative.append((score(moved) - score(back)) / (2 * step))
    derivative = torch.tensor(derivative)
    plain = (
        create_method("grad_eclip", clip, key_similarity=False).explain(image, target).patches[0]
    )
    assert torch.allclose(plain, derivative.clamp_min(0), atol=2e-3, rtol=2e-2)
    assert (derivative > 0).any() and (derivative < 0).any()
    # the key similarity rescales each patch by the min-max cosine of the CLS query with its key
    weighted = create_method("grad_eclip", clip).explain(image, target).patches[0]
    cosine = (F.normalize(q[0, :1], dim=-1) * F.normalize(k[0, 1:], dim=-1)).sum(-1)
    scaled = (cosine - cosine.min()) / (cosine.max() - cosine.min())
    assert torch.allclose(weighted, plain * scaled, atol=1e-6)


def test_m2ib_kl_is_the_gaussian_kl_to_the_standard_normal():
    mean, std = torch.randn(50), torch.rand(50) * 0.9 + 0.05
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, std), torch.distributions.Normal(0.0, 1.0)
    )
    assert torch.allclose(gaussian_kl_to_standard(mean, std.log()), expected, atol=1e-5)


def test_m2ib_optimises_each_image_on_its_own_and_compresses_with_beta():
    """Each image has its own bottleneck and noise (seeded by its dataset index): its values do not
    depend on the batch it is in; a large beta squeezes information out of every patch."""
    model = explained(TINY)
    batch, target, index = images(3), torch.tensor([0, 1, 2]), torch.tensor([7, 8, 9])
    options = {"layer": 1, "steps": 4, "noise_copies": 3}
    together = create_method("m2ib", model, **options).explain(batch, target, index).patches
    alone = (
        create_method("m2ib", model, **options).explain(batch[1:2], target[1:2], index[1:2]).patches
    )
    assert torch.allclose(together[1:2], alone, atol=1e-5)
    assert together.shape == (3, 16) and (together > 0).all()
    compressed = create_method("m2ib", model, beta=100.0, **options).explain(batch, target, index)
    assert (compressed.patches < together).all()


def test_clip_methods_refuse_classifiers_towers_without_cls_and_bad_options():
    classifier = ExplainedModel(OnePatchClassifier(), "the one-patch classifier")
    for name in CLIP_METHODS:
        with pytest.raises(
            UnsupportedBackbone, match=rf"method '{name}' explains the image tower of an open_clip"
        ):
            create_method(name, classifier)
    paper = SVOCLIP(**TINY).eval()
    without_cls = CaptionExplainedModel(paper, "SVO-CLIP without CLS")
    for name in CLIP_METHODS:
        with pytest.raises(UnsupportedBackbone, match="reads the CLS token"):
            create_method(name, without_cls)
    model = explained(TINY)
    with pytest.raises(ValueError, match=r"method_options.m2ib.layer must be in 0..2"):
        create_method("m2ib", model)  # the reference's block 9 does not exist in a 3-block tower
    with pytest.raises(ValueError, match=r"grad_eclip.layers must be in 1..3"):
        create_method("grad_eclip", model, layers=4)
    with pytest.raises(ValueError, match="clip_surgery.redundant must be one of"):
        create_method("clip_surgery", model, redundant="templates")
