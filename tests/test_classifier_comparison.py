"""Salvage Table 2's scores: accuracy, and precision / recall / F1 / MCC of class 1, each dataset index
once; the classifier and its explainers scored as classifiers on one test split."""

import pytest
import torch
from sklearn.metrics import matthews_corrcoef
from torchmetrics.functional.classification import (
    binary_f1_score,
    binary_matthews_corrcoef,
    binary_precision,
    binary_recall,
)

from shapvision.data import DigitsDataModule
from shapvision.metrics.classification_scores import (
    BinaryClassificationScores,
    ClassificationScores,
)
from shapvision.modules import ClassifierComparison

from .helpers import save_vit_pipeline


def one_hot_scores(predicted, classes=2):
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float()


def test_binary_scores_are_torchmetrics_and_sklearns_and_count_each_index_once():
    predicted = [1, 1, 0, 1, 0, 0, 1, 0]
    labels = torch.tensor([1, 0, 0, 1, 1, 0, 1, 1])
    metric = BinaryClassificationScores(resamples=50)
    metric.update(torch.arange(8), one_hot_scores(predicted), labels)
    # a DistributedSampler's padding repeats indices 0 and 1 with the same predictions: ignored
    metric.update(torch.tensor([0, 1]), one_hot_scores(predicted[:2]), labels[:2])
    values = metric.compute()
    p = torch.tensor(predicted)
    assert values["accuracy"] == pytest.approx(5 / 8)
    assert values["precision"] == pytest.approx(float(binary_precision(p, labels)))  # 3 / 4
    assert values["recall"] == pytest.approx(float(binary_recall(p, labels)))  # 3 / 5
    assert values["f1"] == pytest.approx(float(binary_f1_score(p, labels)))
    assert values["mcc"] == pytest.approx(float(binary_matthews_corrcoef(p, labels)), abs=1e-6)
    assert values["mcc"] == pytest.approx(matthews_corrcoef(labels.numpy(), p.numpy()), abs=1e-6)
    assert values["precision_ci_low"] <= values["precision"] <= values["precision_ci_high"]


def test_a_model_that_never_predicts_the_positive_class_scores_zero_not_nan():
    metric = BinaryClassificationScores(resamples=10)
    metric.update(torch.arange(4), one_hot_scores([0, 0, 0, 0]), torch.tensor([1, 0, 1, 0]))
    values = metric.compute()
    assert values["precision"] == 0 and values["recall"] == 0 and values["mcc"] == 0
    assert values["accuracy"] == pytest.approx(0.5)


def test_multiclass_scores_are_the_accuracy_of_the_argmax():
    metric = ClassificationScores(resamples=10)
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    metric.update(torch.arange(3), scores, torch.tensor([1, 2, 2]))
    assert metric.compute()["accuracy"] == pytest.approx(2 / 3)
    assert metric.columns == ("accuracy",)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    torch.manual_seed(0)
    paths = save_vit_pipeline(
        tmp_path_factory.mktemp("comparison"), ("fastshap", "salvage"), num_classes=10
    )
    return paths["classifier"], {o: paths[f"explainer_{o}"] for o in ("fastshap", "salvage")}


def test_each_model_is_scored_by_its_own_classification(pipeline, tmp_path):
    import lightning as L

    classifier, explainers = pipeline
    module = ClassifierComparison(
        classifier,
        explainers={"vit_shapley": explainers["fastshap"], "salvage": explainers["salvage"]},
    )
    data = DigitsDataModule(batch_size=64)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        limit_test_batches=2,
    )
    metrics = trainer.test(module, datamodule=data, verbose=False)[0]
    data.setup("test")
    images = torch.cat([b["image"] for _, b in zip(range(2), data.test_dataloader(), strict=False)])
    labels = torch.cat([b["label"] for _, b in zip(range(2), data.test_dataloader(), strict=False)])
    with torch.no_grad():
        models = module.models
        expected = {
            "classifier": models["classifier"](images),
            # Salvage's u(N): softmax of the summed phi+ (the first half of the raw outputs)
            "salvage": models["salvage"].raw_outputs(images).chunk(2, -1)[0].sum(1),
            # FastSHAP's values add up to v(N) - v(empty): the class gaining most over the empty image
            "vit_shapley": models["vit_shapley"].explain(images).sum(1),
        }
    for row, scores in expected.items():
        accuracy = (scores.argmax(1) == labels).float().mean()
        assert metrics[f"test/{row}/accuracy"] == pytest.approx(float(accuracy)), row


def test_bad_pairings_are_refused(pipeline):
    classifier, explainers = pipeline
    with pytest.raises(
        ValueError, match="binary scores class 1 against class 0, but .* has 10 classes"
    ):
        ClassifierComparison(classifier, binary=True)
    with pytest.raises(
        ValueError, match="is a Classifier checkpoint, but an Explainer checkpoint is needed"
    ):
        ClassifierComparison(classifier, explainers={"wrong": classifier})
    with pytest.raises(ValueError, match="but the data has 2 classes"):
        ClassifierComparison(classifier, num_classes=2)
