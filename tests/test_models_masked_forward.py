"""Token dropping equals attention masking; ResNet masking is local; open_clip towers; weights offline."""

import json

import open_clip
import pytest
import torch

from shapvision.errors import ConfigurationError
from shapvision.models import (
    ExplainerHead,
    PatchVotingHead,
    TimmResNetBackbone,
    TimmTransformerBackbone,
    create_backbone,
    create_timm_model,
)
from shapvision.models.factory import timm_family
from shapvision.models.token_packing import TokenPacking, assign_rows, kept_indices
from shapvision.shapley import ShapleyKernelSampler, UniformSizeSampler

TINY_VIT = dict(depth=2, embed_dim=48, num_heads=3)


def mixed_masks(batch, num_patches, seed=0):
    """Masks of every kind in one batch: full, empty, single patches, and kernel / uniform draws."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.cat(
        [
            ShapleyKernelSampler(num_patches).sample(batch - 4, generator=g),
            UniformSizeSampler(num_patches).sample(2, generator=g),
            torch.ones(1, num_patches, dtype=torch.bool),
            torch.zeros(1, num_patches, dtype=torch.bool),
        ]
    )
    return keep[torch.randperm(batch, generator=g)]


def assert_drop_equals_attention(backbone, images, keep):
    backbone.eval()
    with torch.no_grad():
        reference = backbone.forward_patches(images, keep, masking="attention")
        dropped = backbone.forward_patches(images, keep, masking="drop")
    assert dropped.tokens.shape == (images.shape[0], backbone.num_patches, backbone.embed_dim)
    torch.testing.assert_close(dropped.tokens, reference.tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(dropped.pooled, reference.pooled, rtol=0, atol=1e-5)
    if reference.prefix is not None:
        torch.testing.assert_close(dropped.prefix, reference.prefix, rtol=0, atol=1e-5)
    assert torch.all(dropped.tokens[~keep] == 0)
    return dropped


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("vit_tiny_patch16_224", dict(global_pool="token")),
        ("vit_tiny_patch16_224", dict(global_pool="avg", class_token=False)),
        ("deit_tiny_distilled_patch16_224", {}),
        ("vit_small_patch16_224", dict(reg_tokens=2, no_embed_class=True)),
    ],
)
@pytest.mark.parametrize("masks", ["mixed", "complementary pairs"])
def test_timm_vit_token_dropping_equals_attention_masking(name, kwargs, masks):
    torch.manual_seed(0)
    backbone = create_backbone(name, img_size=64, **{**TINY_VIT, **kwargs})
    images = torch.randn(10, 3, 64, 64)
    if masks == "mixed":
        keep = mixed_masks(10, backbone.num_patches)
    else:
        keep = ShapleyKernelSampler(backbone.num_patches, paired=True).sample(10)
    assert_drop_equals_attention(backbone, images, keep)


def test_token_dropping_gradients_equal_attention_masking():
    """Training backpropagates through the packed rows: parameter and input gradients must match.

    In float64, so that the two summation orders agree to far below any real discrepancy.
    """
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_patch16_224", img_size=64, **TINY_VIT).double().train()
    images = torch.randn(10, 3, 64, 64, dtype=torch.float64)
    keep = mixed_masks(10, backbone.num_patches, seed=3)
    weights = torch.randn(10, backbone.num_patches, backbone.embed_dim, dtype=torch.float64)
    gradients = {}
    for masking in ("attention", "drop"):
        backbone.zero_grad()
        inputs = images.clone().requires_grad_()
        features = backbone.forward_patches(inputs, keep, masking=masking)
        ((features.tokens * weights).sum() + features.pooled.square().sum()).backward()
        gradients[masking] = [inputs.grad] + [p.grad.clone() for p in backbone.parameters()]
    for dropped, reference in zip(gradients["drop"], gradients["attention"], strict=True):
        torch.testing.assert_close(dropped, reference, rtol=1e-9, atol=1e-10)


def test_unmasked_forward_equals_timm_forward_features():
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_patch16_224", img_size=32, **TINY_VIT).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours = backbone.forward_patches(images)
        theirs = backbone.model.forward_features(images)
        full = backbone.forward_patches(images, torch.ones(3, 4, dtype=torch.bool))
    torch.testing.assert_close(ours.tokens, theirs[:, 1:])
    torch.testing.assert_close(ours.pooled, backbone.model.forward_head(theirs, pre_logits=True))
    torch.testing.assert_close(full.tokens, ours.tokens, rtol=0, atol=1e-5)


def test_removing_a_patch_changes_kept_features_but_not_through_the_removed_token():
    """Guards against a mask that is silently ignored: removing patches must change the CLS output."""
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_patch16_224", img_size=32, **TINY_VIT).eval()
    images = torch.randn(1, 3, 32, 32)
    keep = torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        masked = backbone.forward_patches(images, keep)
        altered = images.clone()
        altered[..., 16:, 16:] = 100.0  # change only the removed patch
        masked_altered = backbone.forward_patches(altered, keep)
        full = backbone.forward_patches(images)
    torch.testing.assert_close(masked.pooled, masked_altered.pooled)
    assert (masked.pooled - full.pooled).abs().max() > 1e-3


def test_eva_token_dropping_gathers_rotary_embedding():
    torch.manual_seed(0)
    backbone = create_backbone("eva02_tiny_patch14_224", img_size=56, depth=2)
    assert backbone.is_eva and backbone.grid_size == (4, 4)
    images = torch.randn(8, 3, 56, 56)
    assert_drop_equals_attention(backbone, images, mixed_masks(8, 16, seed=1))


@pytest.fixture(scope="module")
def tiny_open_clip_configs(tmp_path_factory):
    """Small open_clip configs in the library's own JSON format, registered like user configs."""
    folder = tmp_path_factory.mktemp("open_clip_configs")
    text_cfg = {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1}
    configs = {
        "Tiny-ViT-16": {
            "embed_dim": 32,
            "vision_cfg": {
                "image_size": 64,
                "layers": 2,
                "width": 64,
                "patch_size": 16,
                "head_width": 32,
            },
            "text_cfg": text_cfg,
        },
        "Tiny-EVA02-14": {
            "embed_dim": 32,
            "vision_cfg": {
                "image_size": 56,
                "timm_model_name": "eva02_tiny_patch14_224",
                "timm_model_pretrained": False,
                "timm_pool": "token",
                "timm_proj": "linear",
            },
            "text_cfg": text_cfg,
        },
    }
    for name, cfg in configs.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return configs


@pytest.mark.parametrize("name, size", [("Tiny-ViT-16", 64), ("Tiny-EVA02-14", 56)])
def test_open_clip_towers_token_dropping_equals_attention_masking(
    tiny_open_clip_configs, name, size
):
    torch.manual_seed(0)
    backbone = create_backbone(f"open_clip:{name}", img_size=size)
    images = torch.randn(8, 3, size, size)
    assert backbone.num_patches == 16
    assert_drop_equals_attention(backbone, images, mixed_masks(8, 16, seed=2))


@pytest.mark.parametrize(
    "name, size, patch_embedding",
    [
        ("vit_tiny_patch16_224", 64, "patch_embed"),
        ("open_clip:Tiny-ViT-16", 64, "conv1"),
        ("open_clip:Tiny-EVA02-14", 56, "patch_embed"),
    ],
)
@pytest.mark.parametrize("masking", ["drop", "attention"])
def test_one_image_under_many_masks_is_embedded_once(
    tiny_open_clip_configs, name, size, patch_embedding, masking
):
    # A game over one image expands it (batch stride 0): the patch embedding runs on one image, and
    # the features equal those of a batch of real copies.
    torch.manual_seed(0)
    extra = TINY_VIT if not name.startswith("open_clip") else {}
    backbone = create_backbone(name, img_size=size, **extra).eval()
    trunk = getattr(backbone, "visual", None) or backbone.model
    seen = []
    getattr(trunk, patch_embedding).register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    image, keep = torch.randn(1, 3, size, size), mixed_masks(12, 16, seed=3)
    with torch.no_grad():
        copies = backbone.forward_patches(image.repeat(12, 1, 1, 1), keep, masking=masking)
        expanded = backbone.forward_patches(image.expand(12, -1, -1, -1), keep, masking=masking)
    assert seen == [12, 1]
    torch.testing.assert_close(expanded.tokens, copies.tokens, rtol=0, atol=1e-5)
    if copies.pooled is not None:
        torch.testing.assert_close(expanded.pooled, copies.pooled, rtol=0, atol=1e-5)


def test_open_clip_vit_unmasked_tokens_match_open_clip(tiny_open_clip_configs):
    torch.manual_seed(0)
    clip = open_clip.create_model("Tiny-ViT-16").eval()
    from shapvision.models import open_clip_vision_backbone

    backbone = open_clip_vision_backbone(clip.visual)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        clip.visual.output_tokens = True
        pooled_proj, tokens = clip.visual(images)
        ours = backbone.forward_patches(images)
    torch.testing.assert_close(ours.tokens, tokens)
    torch.testing.assert_close(ours.pooled @ clip.visual.proj, pooled_proj)


def test_resnet_grid_is_14_by_14_at_224_with_stride_one_and_no_dilation():
    backbone = create_backbone("resnet50")
    assert isinstance(backbone, TimmResNetBackbone)
    assert backbone.grid_size == (14, 14) and backbone.embed_dim == 2048
    convs = [m for m in backbone.model.layer4.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.stride == (1, 1) and c.dilation == (1, 1) for c in convs)
    with torch.no_grad():
        out = backbone.model.forward_features(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 2048, 14, 14)


def test_the_family_comes_from_timms_registry_not_the_name_prefix():
    """A ResNeXt is a timm ResNet (``timm.models.resnet``) without the prefix; a RegNet, whose name
    starts like neither family, is refused naming its module and the supported ones."""
    backbone = create_backbone("resnext50_32x4d", img_size=64)
    assert isinstance(backbone, TimmResNetBackbone) and backbone.grid_size == (4, 4)
    assert isinstance(
        create_backbone("deit_tiny_patch16_224", img_size=32, depth=1), TimmTransformerBackbone
    )
    with pytest.raises(ConfigurationError, match=r"'regnety_008' is a timm.models.regnet model"):
        create_backbone("regnety_008")
    with pytest.raises(ConfigurationError, match=r"'vitt_base' is not a timm model name"):
        create_backbone("vitt_base")
    assert timm_family("wide_resnet50_2") == "resnet" and timm_family("eva02_tiny_patch14_224") == (
        "transformer"
    )


def test_resnet_masking_is_local_and_gathers_in_grid_order():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", img_size=256).eval()  # 16 x 16 grid
    images = torch.randn(1, 3, 256, 256)
    keep = torch.ones(1, 256, dtype=torch.bool)
    keep[0, 0] = False  # remove the top-left cell only
    with torch.no_grad():
        full = backbone.forward_patches(images)
        masked = backbone.forward_patches(images, keep)
        reference = backbone.model.forward_features(images).flatten(2).transpose(1, 2)
    torch.testing.assert_close(full.tokens, reference)
    grid_masked = masked.tokens.view(16, 16, -1)
    grid_full = full.tokens.view(16, 16, -1)
    # Far from the removed cell (beyond the receptive field's effective reach) nothing changes...
    torch.testing.assert_close(grid_masked[12:, 12:], grid_full[12:, 12:], rtol=0, atol=1e-5)
    # ...next to it something does, and the removed cell itself reads 0.
    assert (grid_masked[0, 1] - grid_full[0, 1]).abs().max() > 1e-3
    assert torch.all(grid_masked[0, 0] == 0)


def test_resnet_all_kept_mask_equals_plain_forward():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", img_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.forward_patches(images, torch.ones(2, 16, dtype=torch.bool)).tokens,
            backbone.forward_patches(images).tokens,
        )


@pytest.mark.parametrize("name, extra", [("vit_tiny_patch16_224", TINY_VIT), ("resnet18", {})])
def test_weights_round_trip_through_a_local_file(tmp_path, name, extra):
    torch.manual_seed(0)
    source = create_timm_model(name, num_classes=0, **extra)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = create_backbone(name, pretrained=str(path), **extra).eval()
    reference = (
        TimmTransformerBackbone(source) if name.startswith("vit") else TimmResNetBackbone(source)
    ).eval()
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.forward_patches(images).pooled, reference.forward_patches(images).pooled
        )


def test_missing_weights_file_and_hub_requests_are_clear_errors(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(
        FileNotFoundError, match=r"pretrained weights file not found: .*nope\.safetensors"
    ):
        create_backbone("vit_tiny_patch16_224", pretrained=str(missing))
    with pytest.raises(ValueError, match="never does"):
        create_backbone("resnet18", pretrained=True)
    with pytest.raises(FileNotFoundError, match="nope"):
        create_backbone("open_clip:ViT-B-16", pretrained=str(missing))


def test_bad_inputs_are_clear_errors():
    backbone = create_backbone("vit_tiny_patch16_224", img_size=32, **TINY_VIT)
    with pytest.raises(ValueError, match=r"expects 32x32 images"):
        backbone.forward_patches(torch.zeros(1, 3, 48, 48))
    with pytest.raises(TypeError, match="torch.bool"):
        backbone.forward_patches(torch.zeros(1, 3, 32, 32), torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"keep must be \(B, N\)"):
        backbone.forward_patches(torch.zeros(2, 3, 32, 32), torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="masking must be one of"):
        create_backbone("vit_tiny_patch16_224", img_size=32, masking="zero", **TINY_VIT)


def test_assign_rows_tops_up_the_longest_sample_with_the_shortest():
    row_of, offset_of, rows, width = assign_rows([3, 0, 5, 2, 4], capacity=7)
    assert (rows, width) == (2, 7)
    assert row_of == [1, -1, 0, 0, 1]  # [5, 2] and [4, 3]; the empty sample gets no row
    assert offset_of == [4, 0, 0, 5, 0]
    with pytest.raises(ValueError, match="does not fit a row of 7"):
        assign_rows([8], capacity=7)


def test_token_packing_round_trip_and_block_diagonal_attention():
    keep = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]], dtype=torch.bool)
    tokens = torch.arange(20, dtype=torch.float32).view(4, 5, 1) + 1  # 1 prefix token + 4 patches
    index, valid = kept_indices(keep)
    assert index[0, :2].tolist() == [0, 2] and valid.sum(1).tolist() == [2, 0, 4, 2]
    packing = TokenPacking.from_keep(keep, num_prefix=1)
    # Lengths 3, 1, 5, 3 into rows of 4 + 2: [5, 1] and [3, 3].
    assert (packing.rows, packing.length) == (2, 6)
    expected = tokens * torch.cat([torch.ones(4, 1, dtype=torch.bool), keep], 1).unsqueeze(2)
    torch.testing.assert_close(packing.unpack(packing.pack(tokens)), expected)
    assert packing.pack(tokens)[0, :, 0].tolist() == [11, 12, 13, 14, 15, 6]
    assert packing.patch[0].tolist() == [-1, 0, 1, 2, 3, -1]
    mask = packing.attention_mask()
    assert mask[0, :5, :5].all() and not mask[0, :5, 5].any() and mask[0, 5, 5]
    assert mask[1, :3, :3].all() and mask[1, 3:, 3:].all() and not mask[1, :3, 3:].any()


def test_complementary_masks_pack_two_samples_per_full_row():
    keep = ShapleyKernelSampler(196, paired=True).sample(32)
    packing = TokenPacking.from_keep(keep, num_prefix=1)
    assert (packing.rows, packing.length) == (16, 198)
    assert packing.segment.ge(0).all()  # no padding at all


def test_heads_shapes_and_voting_efficiency():
    torch.manual_seed(0)
    tokens, prefix = torch.randn(2, 16, 48), torch.randn(2, 1, 48)
    head = ExplainerHead(48, num_outputs=5, mlp_hidden_dim=64)
    assert head(tokens, prefix).shape == (2, 16, 5)
    assert isinstance(head.blocks[0].norm1, torch.nn.Identity)
    voting = PatchVotingHead(48, 5)
    keep = torch.rand(2, 16) > 0.5
    phi = voting(tokens, keep)
    assert torch.all(phi[~keep] == 0)
    torch.testing.assert_close(phi.sum(1), (voting(tokens) * keep.unsqueeze(2)).sum(1))
    torch.testing.assert_close(voting.summed_votes(tokens, keep), phi.sum(1))
    nothing = torch.zeros_like(keep)
    assert torch.all(voting.summed_votes(tokens, nothing) == 0)  # v(empty) = 0 exactly
