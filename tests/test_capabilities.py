"""Modules are asked what they can do, not what they are called: the capability protocols hold for
the suite's modules, a new module that implements one is taken where the suite's own is, and the SVO
objective is one object whose options are checked before a model is built."""

import pytest
import torch
import torch.nn as nn

from shapvision.attribution.base import Attribution
from shapvision.attribution.explained_model import ExplainedModel
from shapvision.attribution.learned import SVOValues
from shapvision.models.capabilities import ExplainsAGame, ImageTextModel, SelfExplaining
from shapvision.modules import (
    SVOCLIP,
    Classifier,
    CLIPFineTune,
    Explainer,
    Surrogate,
    SVOClassifier,
)
from shapvision.objectives import SVOObjective


def test_the_suites_modules_have_the_capabilities_they_declare():
    assert issubclass(SVOClassifier, SelfExplaining) and not issubclass(
        SVOClassifier, ImageTextModel
    )
    assert issubclass(SVOCLIP, SelfExplaining) and issubclass(SVOCLIP, ImageTextModel)
    assert issubclass(CLIPFineTune, ImageTextModel) and not issubclass(CLIPFineTune, SelfExplaining)
    assert issubclass(Explainer, ExplainsAGame) and not issubclass(Explainer, SelfExplaining)
    for plain in (Classifier, Surrogate):
        assert not issubclass(plain, SelfExplaining | ExplainsAGame | ImageTextModel)


class AdditiveVotes(nn.Module):
    """A self-explaining model the suite does not know: each patch votes its mean pixel per class."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([1.0, -1.0]))
        self.net = type("Net", (), {"backbone": type("B", (), {"patch_size": 4})()})()
        self.grid_size, self.num_patches = (2, 2), 4

    def own_values(self, images, text=None):
        patches = images.mean(1).unfold(1, 4, 4).unfold(2, 4, 4).mean((-1, -2)).flatten(1)
        return patches.unsqueeze(-1) * self.weight

    def forward(self, images, keep=None):
        values = self.own_values(images)
        if keep is not None:
            values = values * keep.unsqueeze(-1)
        return values.sum(1)


def test_a_new_self_explaining_model_is_explained_by_its_own_values():
    model = ExplainedModel(AdditiveVotes(), "additive")
    images = torch.rand(3, 3, 8, 8)
    target = torch.tensor([0, 1, 0])
    values = SVOValues(model).explain(images, target)
    expected = model.module.own_values(images).gather(2, target.view(-1, 1, 1).expand(-1, 4, 1))
    assert isinstance(values, Attribution)
    torch.testing.assert_close(values.patches, expected[..., 0])
    # efficiency of the model's own game: the votes add up to the logit of the target
    torch.testing.assert_close(
        values.patches.sum(1), model.logits(images).gather(1, target.view(-1, 1))[:, 0]
    )


def test_a_model_without_own_values_is_refused_by_the_own_values_method():
    module = nn.Linear(1, 1)
    module.grid_size, module.num_patches = (2, 2), 4
    module.net = AdditiveVotes().net
    with pytest.raises(ValueError, match=r"self-explaining classifier .* which has none"):
        SVOValues(ExplainedModel(module, "plain"))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(shapley_weight=-1), r"shapley_weight \(lambda\) must be >= 0"),
        (dict(shapley_weight=1, num_masks=3, paired=True), "even with paired=true"),
        (
            dict(shapley_weight=1, targets="every"),
            r"shapley_classes must be one of \('sampled', 'all'\)",
        ),
    ],
)
def test_the_svo_objective_checks_its_options(options, message):
    with pytest.raises(ValueError, match=message):
        SVOObjective(**options)


def test_the_svo_objective_draws_kernel_masks_and_the_targets_of_its_mode():
    images = 6
    for targets, modes, expected in (
        ("sampled", None, "sampled"),
        ("all", None, None),
        ("matched", {"matched": "matched"}, "matched"),
    ):
        objective = SVOObjective(1.0, 4, targets=targets, target_modes=modes).for_patches(9)
        masks, chosen = objective.draw(images, 5, "cpu")
        assert masks.shape == (6, 4, 9) and masks.dtype == torch.bool
        sizes = masks.sum(-1)
        assert ((sizes >= 1) & (sizes <= 8)).all()  # the kernel's sizes: never empty or full
        if expected is None:
            assert chosen is None
        elif expected == "matched":
            assert torch.equal(chosen, torch.arange(6).view(6, 1).expand(6, 4))
        else:
            assert chosen.shape == (6, 4) and ((chosen >= 0) & (chosen < 5)).all()
