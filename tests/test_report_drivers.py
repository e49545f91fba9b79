"""The demo report and the SVO ablation table, from run folders in the files the CLIs write: figures in
their rows, through the one table writer, and a clear error for a run that is missing a file."""

import json

import pytest
import yaml

from shapvision_drivers.report import build_report
from shapvision_drivers.svo_ablation import ablation_table, read_run


def write_json(path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_the_demo_report_lists_the_stages_and_the_evaluation_table(tmp_path):
    runs, table = tmp_path / "runs", tmp_path / "demo"
    write_json(runs / "classifier" / "test_metrics.json", {"test/acc": 0.9812})
    write_json(runs / "svo_vit" / "test_metrics.json", {"test/acc": 0.97})
    write_json(
        runs / "surrogate" / "test_metrics.json",
        {
            "test/acc_full_image": 0.975,
            "test/kl": 0.125,
            "test/kl_kept_0.5": 0.25,
            "test/acc_kept_0.5": 0.5,
        },
    )
    table.mkdir()
    (table / "table.md").write_text("# title\n\n| model | method |\n|---|---|\n| a | b |\n")
    report = build_report(runs, table, tmp_path / "out", "12 s")
    assert "| quantity | value |" in report
    assert "| classifier test accuracy | 0.9812 |" in report
    assert "| surrogate KL / accuracy, fraction kept 0.5 | 0.2500 / 0.5000 |" in report
    assert "| a | b |" in report and "Wall time of the run: 12 s." in report
    assert (tmp_path / "out" / "report.md").read_text() == report
    with pytest.raises(
        FileNotFoundError,
        match=r"table.md not found: run `python -m shapvision_drivers.tables demo",
    ):
        build_report(runs, tmp_path / "nowhere", tmp_path / "out", None)


def test_the_svo_ablation_table_has_a_row_per_run(tmp_path):
    runs = []
    for weight, stop in ((0.0, "none"), (1.0, "masked")):
        folder = tmp_path / f"lambda_{weight}"
        folder.mkdir()
        hparams = {"shapley_weight": weight, "stop_gradient": stop, "drop_cls_token": None}
        (folder / "hparams.yaml").write_text(yaml.safe_dump(hparams))
        write_json(folder / "test_metrics.json", {"test/acc": 0.5 + weight / 4})
        row = {"method": "svo", "shapley_pearson": 0.25, "shapley_spearman": 0.125}
        row |= {"shapley_l2": 1.0, "insertion_patches": 0.75, "deletion_patches": 0.0625}
        row |= {"insertion_pixels": 0.5, "deletion_pixels": 0.375}
        write_json(folder / "evaluation" / "evaluation.json", {"rows": [row]})
        runs.append(read_run(folder))
    table = ablation_table(runs)
    lines = table.splitlines()
    assert lines[0].startswith("| lambda | stop_gradient | CLS | test accuracy | Pearson target |")
    assert lines[2] == (
        "| 0 | - | dropped | 0.5000 | 0.2500 | 0.1250 | 1.0000 | 0.7500 | 0.0625 | 0.5000 | 0.3750 |"
    )
    assert lines[3].startswith("| 1 | masked | dropped | 0.7500 |")
    (tmp_path / "lambda_0.0" / "hparams.yaml").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"hparams.yaml not found: fit and test this run first"
    ):
        read_run(tmp_path / "lambda_0.0")
