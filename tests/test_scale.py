"""The cost model of docs/scale.md: training FLOPs counted at real size, evaluation FLOPs counted on a
proxy and rescaled to the real model's forward, GPU-hours from FLOPs, peak and MFU."""

import pytest
import torch
import yaml

from shapvision.models.cost import FlopTally, measure_cost
from shapvision_drivers import scale


@pytest.fixture(scope="module")
def factories(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    datasets = scale.read_yaml(scale.SCALE_FILE)["datasets"]
    scale.register_proxy_clip(folder)
    (folder / "real").mkdir()
    (folder / "proxy").mkdir()
    return (
        scale.ModuleFactory(folder / "real", proxy=False, datasets=datasets),
        scale.ModuleFactory(folder / "proxy", proxy=True, datasets=datasets),
    )


def test_a_training_step_counts_forward_and_backward_of_the_configured_model(factories):
    real, _ = factories
    config = scale.merged_configs(
        ["experiments/digits/trainer.yaml", "experiments/digits/classifier.yaml"]
    )
    module = real.build(config)
    # the CLI's links: the digits data module's 32 px and 10 classes reach the model
    assert module.hparams.img_size == 32 and module.hparams.num_classes == 10
    forward = measure_cost(module, module, 32).flops
    step = scale.training_flops_per_image(module)
    # backward = 2 x forward for every matrix product but the patch embedding's input gradient
    assert 2.8 * forward < step < 3.0 * forward, (step, forward)


def test_an_evaluation_is_counted_in_forwards_of_the_explained_model(factories, tmp_path):
    # leave-one-out on the digits classifier (proxy: the same 4 x 4 grid): the evaluation's own
    # full forward, then v(N) and 16 forwards with 15 of 16 patches (a dropped token's blocks are not
    # run: each costs 15/16 to 16/17 of a full forward with its CLS token)
    run = tmp_path / "loo.yaml"
    run.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "class_path": "shapvision.modules.Evaluation",
                    "init_args": {
                        "checkpoint": "runs/digits/classifier/best.ckpt",
                        "methods": ["leave_one_out"],
                        "metrics": ["sparseness"],
                    },
                }
            }
        )
    )
    table = {"trainer": "experiments/digits/trainer.yaml", "runs": {"LOO": str(run)}}
    real, proxy = factories
    settings = scale.read_yaml(scale.SCALE_FILE)
    rows = scale.table_rows(proxy, real, settings, {"loo": table}, log=lambda message: None)
    equivalents = float(rows[0]["forward-equivalents / image"])
    assert 1 + 1 + 16 * 0.85 < equivalents < 1 + 1 + 16, rows[0]
    assert rows[0]["images"] == "270"  # the digits test split
    assert rows[-1]["run"] == "**all runs**"


def test_gpu_hours_are_flops_over_peak_times_mfu():
    settings = {"device": {"peak_tflops": {"bf16": 1000.0, "fp32": 500.0}}, "mfu": 0.5}
    assert scale.gpu_hours(3600 * 500e12, settings, "bf16") == "1.0"
    assert scale.gpu_hours(3600 * 500e12, settings, "fp32") == "2.0"


def test_every_dataset_a_template_reads_has_a_size():
    settings = scale.read_yaml(scale.SCALE_FILE)
    for name, line in scale.templates("fit").items():
        config = scale.merged_configs(scale.fit_configs(line))
        assert scale.dataset_key(config) in settings["datasets"], name
    tables = scale.read_yaml(scale.TABLES_FILE)
    for name in scale.templates("table"):
        for configs in tables[name.removeprefix("table-")]["runs"].values():
            configs = [configs] if isinstance(configs, str) else configs
            config = scale.merged_configs(configs)
            assert scale.dataset_key(config) in settings["datasets"], (name, configs)


def test_a_later_config_of_another_class_replaces_the_data_module():
    # SVO Table 3 on ImageNet-S: vit.yaml's gtsegs data module, then imagenet_s.yaml's ImageNet-S one
    table = scale.read_yaml(scale.TABLES_FILE)["svo-segmentation-imagenet-s"]
    config = scale.merged_configs([table["trainer"], *table["runs"]["ViT-B/16"]])
    assert config["data"]["class_path"].endswith("ImageNetSDataModule")
    assert scale.dataset_key(config) == "ImageNetS919"
    same = scale.merge(
        {"a": {"class_path": "X", "init_args": {"p": 1}}}, {"a": {"init_args": {"q": 2}}}
    )
    assert same == {"a": {"class_path": "X", "init_args": {"p": 1, "q": 2}}}


def test_checkpoints_name_the_configs_that_train_them():
    assert scale.training_config_of("runs/pets/surrogate/best.ckpt") == [
        "experiments/pets/trainer.yaml",
        "experiments/pets/surrogate.yaml",
    ]
    assert scale.training_config_of("${CHECKPOINTS}/svo_clip/best.ckpt")[-1] == (
        "experiments/cc3m/svo_clip.yaml"
    )
    with pytest.raises(FileNotFoundError, match="no training config"):
        scale.training_config_of("${CHECKPOINTS}/nowhere/best.ckpt")


def test_bad_options_are_refused_before_anything_is_built(capsys):
    with pytest.raises(SystemExit):
        scale.main(["--tables", "svo-retrieval", "no-such-table"])
    error = capsys.readouterr().err
    assert "--tables: no such table" in error and "no-such-table" in error
    with pytest.raises(SystemExit):
        scale.main(["--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err


def test_flop_tally_counts_what_the_flop_counter_counts_and_through_autograd_grad():
    torch.manual_seed(0)
    inner = torch.nn.Linear(8, 16)
    network = torch.nn.Sequential(torch.nn.Linear(4, 8), inner)
    x = torch.randn(3, 4, requires_grad=True)
    tally = FlopTally(split=inner)
    with tally:
        out = network(x)
    assert tally.total == 2 * 3 * 4 * 8 + 2 * 3 * 8 * 16  # two matrix products
    assert tally.split_flops == 2 * 3 * 8 * 16
    with tally:  # captum's gradient: with respect to the leaf input
        (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.shape == x.shape
    # the backward's input gradients (no weight gradients are asked for) cost what the forward did
    assert tally.total == 2 * (2 * 3 * 4 * 8 + 2 * 3 * 8 * 16)
