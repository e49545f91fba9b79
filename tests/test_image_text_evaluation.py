"""shapvision-clip end to end on digit scenes: fit, the evaluation module, its DDP equality, bad input.

About 2 minutes of CLI runs: run by `make test-slow`, which CI runs after `make test`."""

import functools
import json

import pytest
import yaml

from .helpers import run_module

pytestmark = pytest.mark.slow

TINY_DATA = {
    "train_scenes": 64,
    "val_scenes": 16,
    "test_scenes": 16,
    "batch_size": 16,
    "eval_batch_size": 8,
}


clip_cli = functools.partial(run_module, "shapvision.clip_cli")


def config(folder, name, model, **trainer):
    path = folder / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "trainer": {
                    "accelerator": "cpu",
                    "devices": 1,
                    "max_epochs": 1,
                    "inference_mode": False,
                    "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "logger": {
                        "class_path": "lightning.pytorch.loggers.CSVLogger",
                        "init_args": {"save_dir": str(folder), "name": name, "version": ""},
                    },
                    "callbacks": [
                        {
                            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                            "init_args": {"dirpath": str(folder / name), "filename": "last"},
                        },
                        "shapvision.callbacks.EvaluationTableWriter",
                    ],
                    **trainer,
                },
                "data": {
                    "class_path": "shapvision.data.DigitScenesDataModule",
                    "init_args": TINY_DATA,
                },
                "model": model,
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def svo_clip_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    model = {
        "class_path": "shapvision.modules.SVOCLIP",
        "init_args": {
            "clip_model": "shapvision-digits-clip",
            "img_size": 32,
            "num_masks": 2,
            "paired": True,
        },
    }
    clip_cli("fit", "--config", str(config(folder, "svo_clip", model)), cwd=folder)
    return folder


def evaluation(folder, name, checkpoint, **options):
    model = {
        "class_path": "shapvision.modules.ImageTextEvaluation",
        "init_args": {
            "checkpoint": str(checkpoint),
            "clip_model": "shapvision-digits-clip",
            "img_size": 32,
            "methods": ["svo_clip", "kernelshap", "random"],
            "method_options": {"kernelshap": {"budget": 64}},
            "metrics": [
                "retrieval",
                "localisation",
                "shapley_accuracy",
                "retrieval_insertion_deletion",
                "sparseness",
                "efficiency",
            ],
            "metric_options": {"shapley_accuracy": {"images": 1, "link": "identity"}},
            **options,
        },
    }
    return model


def test_svo_clip_fit_links_the_tokenizer_and_evaluation_is_the_same_under_ddp(svo_clip_run):
    folder = svo_clip_run
    checkpoint = folder / "svo_clip" / "last.ckpt"
    results = {}
    for name, extra in (("single", {}), ("ddp", {"devices": 2, "strategy": "ddp"})):
        path = config(folder, name, evaluation(folder, name, checkpoint), **extra)
        clip_cli("test", "--config", str(path), cwd=folder)
        results[name] = json.loads((folder / name / "test_metrics.json").read_text())
    single, ddp = results["single"], results["ddp"]
    assert {
        "test/t2i_r1",
        "test/i2t_r5",
        "test/svo_clip/rma",
        "test/kernelshap/insertion_t2i_r1",
    } <= set(single)
    assert single.keys() == ddp.keys()
    for key, value in single.items():
        assert ddp[key] == pytest.approx(value, abs=1e-5), key
    # SVO-CLIP's votes and KernelSHAP add up to the caption game's payout; random values do not
    assert single["test/svo_clip/efficiency_gap"] < 1e-5
    assert single["test/kernelshap/efficiency_gap"] < 1e-5 < single["test/random/efficiency_gap"]
    # KernelSHAP on the similarity game tracks its exact values; random does not
    assert single["test/kernelshap/shapley_pearson"] > 0.8 > single["test/random/shapley_pearson"]
    table = json.loads((folder / "single" / "evaluation.json").read_text())
    assert [r["method"] for r in table["rows"]] == ["svo_clip", "kernelshap", "random"]
    assert set(table["model_metrics"]) >= {"t2i_r1", "i2t_r10"}


def test_the_data_tokenizer_and_image_size_come_from_the_model(tmp_path):
    from shapvision.clip_cli import ImageTextCLI
    from shapvision.data.image_text import ImageTextDataModule
    from shapvision.modules.base import ShapleyModule

    model = {
        "class_path": "shapvision.modules.CLIPFineTune",
        "init_args": {"clip_model": "shapvision-digits-clip", "img_size": 32},
    }
    cli = ImageTextCLI(
        ShapleyModule,
        ImageTextDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=["--config", str(config(tmp_path, "link", model))],
    )
    assert cli.datamodule.tokenizer.model_name == "shapvision-digits-clip"
    assert cli.datamodule.tokenizer.context_length == 16 and cli.datamodule.img_size == 32


def test_evaluation_refuses_another_model_and_a_classifier_method(svo_clip_run, tmp_path):
    checkpoint = svo_clip_run / "svo_clip" / "last.ckpt"
    bad = evaluation(tmp_path, "bad", checkpoint)
    bad["init_args"]["clip_model"] = "EVA02-B-16"
    result = clip_cli(
        "test", "--config", str(config(tmp_path, "bad", bad)), cwd=tmp_path, check=False
    )
    assert result.returncode != 0
    assert (
        "trained with clip_model='shapvision-digits-clip', but model.init_args.clip_model is 'EVA02-B-16'"
        in result.stderr
    )
    bad = evaluation(tmp_path, "bad2", checkpoint, methods=["svo"])
    result = clip_cli(
        "test", "--config", str(config(tmp_path, "bad2", bad)), cwd=tmp_path, check=False
    )
    assert "method 'svo' explains a self-explaining classifier by its own values" in result.stderr
