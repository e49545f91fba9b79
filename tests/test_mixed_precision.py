"""Every module's training step under bf16 and fp16 autocast on the CPU (what `--trainer.precision
bf16-mixed` and `16-mixed` run; Lightning adds a gradient scaler for fp16): a finite loss within a
stated tolerance of the fp32 loss on the same batch and the same masks, and finite gradients."""

import pytest
import torch

from shapvision.modules import (
    SVOCLIP,
    Classifier,
    CLIPFineTune,
    Explainer,
    Surrogate,
    SVOClassifier,
)

from .helpers import TINY_BACKBONE, save_vit_pipeline

COMMON = {"num_classes": 4, "img_size": 32}
TINY_CLIP = {"clip_model": "shapvision-digits-clip", "img_size": 32}
# bf16 keeps 8 bits of mantissa: a loss of a tiny random model moves by about 1 %
RELATIVE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.manual_seed(0)
    paths = save_vit_pipeline(tmp_path_factory.mktemp("precision"), **COMMON)
    return paths["classifier"], paths["surrogate"]


def build(name, checkpoints):
    classifier, surrogate = checkpoints
    if name == "classifier":
        return Classifier(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, **COMMON)
    if name == "surrogate":
        return Surrogate(classifier_checkpoint=classifier, **COMMON)
    if name.startswith("explainer_"):
        objective = name.removeprefix("explainer_")
        return Explainer(
            surrogate_checkpoint=surrogate, objective=objective, head_hidden_dim=16, **COMMON
        )
    if name == "svo_vit":
        return SVOClassifier(
            backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_BACKBONE, **COMMON
        )
    if name == "svo_resnet":
        return SVOClassifier(backbone="resnet18", **COMMON)
    if name == "svo_clip":
        return SVOCLIP(**TINY_CLIP, num_masks=2)
    return CLIPFineTune(**TINY_CLIP)


def batch_for(module):
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 32, 32, generator=generator)
    if isinstance(module, (SVOCLIP, CLIPFineTune)):
        captions = ["a one", "a two on the left", "a three", "a four at the top"]
        return {"image": images, "text": module.tokenize(captions)}
    return {"image": images, "label": torch.tensor([0, 1, 2, 3]), "index": torch.arange(4)}


def loss_of(module, batch, autocast: torch.dtype | None) -> torch.Tensor:
    torch.manual_seed(7)  # the same masks in both precisions
    with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
        return module.training_step(batch, 0)


MODULES = [
    "classifier",
    "surrogate",
    "explainer_fastshap",
    "explainer_simshap",
    "explainer_salvage",
    "svo_vit",
    "svo_resnet",
    "svo_clip",
    "clip",
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", MODULES)
def test_a_mixed_precision_training_step_is_finite_and_close_to_fp32(name, dtype, checkpoints):
    module = build(name, checkpoints).train()
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    batch = batch_for(module)
    full = loss_of(module, batch, autocast=None)
    mixed = loss_of(module, batch, autocast=dtype)
    assert torch.isfinite(mixed), name
    assert mixed.dtype == torch.float32, f"{name}: the loss is reduced in {mixed.dtype}"
    assert abs(float(mixed) - float(full)) <= RELATIVE_TOLERANCE * abs(float(full)) + 1e-4, (
        name,
        float(full),
        float(mixed),
    )
    mixed.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), name
