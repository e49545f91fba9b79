"""Sanity checks and the metrics peers have: sparseness, max-sensitivity and cascading model
randomisation equal Quantus on the same model, inputs and explanations; the efficiency check is 0 for
exact Shapley values and undefined for magnitudes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shapvision.attribution import Attribution, ExplainedModel, create_method
from shapvision.metrics import ExplanationBatch, create_metric
from shapvision.metrics.efficiency import EfficiencyGap
from shapvision.metrics.max_sensitivity import MaxSensitivity, uniform_noise
from shapvision.metrics.model_randomisation import ModelRandomisation, resettable_layers
from shapvision.metrics.sparseness import Sparseness, gini
from shapvision.shapley.exact import exact_shapley

from .helpers import IMAGE, MODEL, REPOSITORY, OnePatchClassifier, run_module

quantus = pytest.importorskip("quantus")


def one_patch_setup(count=6):
    model = ExplainedModel(OnePatchClassifier(), "one-patch classifier")
    images = torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        target = model.logits(images).argmax(-1)
    return model, images, target, torch.arange(count)


def as_pixels(patches: torch.Tensor) -> np.ndarray:
    """Patch values on the 32 x 32 pixel grid, each patch's value repeated over its 8 x 8 pixels:
    Spearman, Gini and norm ratios are unchanged by this equal replication, so Quantus, which needs
    explanations at the input's size, sees what our metrics see."""
    grid = patches.view(-1, 1, 4, 4).float()
    return F.interpolate(grid, scale_factor=8, mode="nearest").detach().numpy()


def quantus_explain(name, **options):
    def explain(model, inputs, targets, **kwargs):
        explained = ExplainedModel(model, "quantus copy")
        method = create_method(name, explained, **options)
        x = torch.as_tensor(inputs, dtype=torch.float32)
        y = torch.as_tensor(targets, dtype=torch.long)
        return as_pixels(method.explain(x, y, torch.arange(len(x))).patches)

    return explain


def quantus_inputs(model, images, target, attribution) -> dict:
    """The same model, images, classes and saliency explanations, as Quantus takes them."""
    return {
        "model": model.module,
        "x_batch": images.numpy(),
        "y_batch": target.numpy(),
        "a_batch": as_pixels(attribution.patches),
        "explain_func": quantus_explain("saliency"),
        "device": "cpu",
    }


def test_sparseness_is_the_gini_index_and_equals_quantus():
    assert gini(torch.ones(1, 8)).item() == pytest.approx(0.0)
    assert gini(torch.eye(8)[:1]).item() == pytest.approx(7 / 8)
    assert gini(torch.zeros(1, 8)).isnan().all()
    model, images, target, index = one_patch_setup()
    values = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    metric = Sparseness()
    metric.update(ExplanationBatch(images, target, index, model), Attribution(values))
    ours = metric.compute()["per_image"]["sparseness"].numpy()
    oracle = quantus.Sparseness(disable_warnings=True)(
        model=model.module,
        x_batch=images.numpy(),
        y_batch=target.numpy(),
        a_batch=as_pixels(values),
        device="cpu",
    )
    np.testing.assert_allclose(ours, oracle, atol=1e-5)


def test_efficiency_gap_is_zero_for_exact_shapley_values_and_undefined_for_magnitudes():
    image_batch = ExplanationBatch(IMAGE, torch.ones(1, dtype=torch.long), torch.arange(1), MODEL)

    def game(keep):
        return MODEL.masked_probabilities(
            IMAGE.expand(len(keep), -1, -1, -1), keep, torch.ones(len(keep), dtype=torch.long)
        )

    exact = exact_shapley(game, 4).float().view(1, 4)
    signed = type("M", (), {"values": "signed"})()
    magnitude = type("M", (), {"values": "magnitude"})()
    metric = EfficiencyGap()
    metric.update(image_batch, Attribution(exact), signed)
    assert metric.compute()["efficiency_gap"].item() == pytest.approx(0.0, abs=1e-6)
    metric.reset()
    metric.update(image_batch, Attribution(exact * 2), signed)
    payout = (
        game(torch.ones(1, 4, dtype=torch.bool)) - game(torch.zeros(1, 4, dtype=torch.bool))
    ).item()
    assert metric.compute()["efficiency_gap"].item() == pytest.approx(abs(payout), rel=1e-5)
    metric.reset()
    metric.update(image_batch, Attribution(exact), magnitude)
    result = metric.compute()
    assert result["efficiency_gap"].isnan() and result["efficiency_gap_undefined"].item() == 1


def test_efficiency_gap_on_the_logit_game_of_a_logit_explanation():
    """SVO's votes are Shapley values of the logit game: scored on that game (link identity) they add up."""
    image_batch = ExplanationBatch(IMAGE, torch.ones(1, dtype=torch.long), torch.arange(1), MODEL)

    def logit_game(keep):
        return MODEL.masked_logits(IMAGE.expand(len(keep), -1, -1, -1), keep)[:, 1]

    exact = exact_shapley(logit_game, 4).float().view(1, 4)
    signed = type("M", (), {"values": "signed"})()
    gaps = {}
    for link in ("identity", None):
        metric = EfficiencyGap(link=link)
        metric.update(image_batch, Attribution(exact), signed)
        gaps[link] = metric.compute()["efficiency_gap"].item()
    assert gaps["identity"] == pytest.approx(0.0, abs=1e-5)
    assert gaps[None] > 1  # the probability game pays out less than 1; these values sum to 10


def test_max_sensitivity_equals_quantus_with_the_same_noise():
    model, images, target, index = one_patch_setup()
    method = create_method("saliency", model)
    attribution = method.explain(images, target, index)
    metric = MaxSensitivity(images=6, samples=3, radius=0.2, seed=0)
    metric.update(ExplanationBatch(images, target, index, model), attribution, method)
    ours = metric.compute()["per_image"]["max_sensitivity"].numpy()

    draws = iter(range(3))

    def same_noise(arr, indices, indexed_axes=None, **kwargs):
        draw = next(draws)
        noise = torch.stack([uniform_noise((3, 32, 32), 0.2, 0, i, draw) for i in range(6)])
        return arr + noise.reshape(arr.shape).float().numpy()

    oracle = quantus.MaxSensitivity(
        nr_samples=3,
        perturb_func=same_noise,
        normalise=False,
        abs=False,
        disable_warnings=True,
    )(**quantus_inputs(model, images, target, attribution))
    np.testing.assert_allclose(ours, oracle, rtol=1e-4)
    assert (ours > 0).all()


def test_cascading_randomisation_equals_quantus_mprt_layer_by_layer():
    model, images, target, index = one_patch_setup()
    layers = resettable_layers(model.module)
    assert [type(layer).__name__ for layer in layers] == ["Linear", "Linear"]  # out, then hidden
    method = create_method("saliency", model)
    attribution = method.explain(images, target, index)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    metric = ModelRandomisation(images=6, stages=len(layers), seed=42)
    metric.update(ExplanationBatch(images, target, index, model), attribution, method)
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} not restored"
    result = metric.compute()
    ours = result["per_image"]["spearman"].numpy()  # (images, stages)
    oracle = quantus.MPRT(
        layer_order="top_down", seed=42, abs=True, normalise=False, disable_warnings=True
    )(**quantus_inputs(model, images, target, attribution))
    by_layer = [np.array(v) for k, v in oracle.items() if k != "original"]
    np.testing.assert_allclose(ours, np.stack(by_layer, 1), atol=1e-6)
    # random weights still read patch 6 alone: the gradient's support, hence the ranks, survive
    assert result["mprt_spearman"].item() == pytest.approx(1.0)
    assert not np.allclose(result["per_image"]["ssim"].numpy(), 1.0)  # magnitudes inside it do not


def test_randomisation_exposes_an_explanation_that_ignores_the_model():
    model, images, target, index = one_patch_setup()

    class Fixed:
        values = "signed"

        def explain(self, images, target, index=None):
            return Attribution(torch.arange(16.0).repeat(len(images), 1))

    method = Fixed()
    metric = create_metric("mprt", 16, images=6, stages=2)
    metric.update(
        ExplanationBatch(images, target, index, model), method.explain(images, target), method
    )
    result = metric.compute()
    assert result["mprt_spearman"].item() == pytest.approx(1.0)
    assert result["mprt_ssim"].item() == pytest.approx(1.0)


def test_quantus_benchmark_computes_quantus_curves_in_its_tiny_mode(tmp_path):
    """benchmarks/quantus_curves.py exits non-zero if our pixel-fill curves differ from Quantus's."""
    script = REPOSITORY / "benchmarks" / "quantus_curves.py"
    result = run_module(script, "--tiny", cwd=tmp_path, timeout=300)
    assert "max |curve difference| vs Quantus (pixel fill) = " in result.stdout
