"""The drivers' experiment data is YAML beside the configs: the seeds' tables, the SLURM pipelines and
the templates' resources name configs that exist, and a wrong entry is refused naming the file."""

import pytest
import yaml

from shapvision_drivers.published import paper_beside_ours, read_published
from shapvision_drivers.slurm import PIPELINES, SEED_TABLES, TEMPLATE_RESOURCES, read_pipelines
from shapvision_drivers.tables import CLIS, TABLES, read_tables

from .helpers import REPOSITORY


def test_every_table_names_existing_configs_and_a_known_cli():
    assert {"demo", "compare-digits", "svo-faithfulness", "demo-clip"} <= set(TABLES)
    for name, table in TABLES.items():
        assert table.cli in CLIS, name
        for config in (table.trainer, *[c for configs in table.runs.values() for c in configs]):
            assert (REPOSITORY / config).is_file(), f"{name}: {config}"
    assert set(SEED_TABLES) <= set(TABLES)


def test_every_pipeline_chains_existing_configs_through_the_previous_stages_option():
    assert list(PIPELINES["vitshapley-digits"][i].name for i in range(3)) == [
        "classifier",
        "surrogate",
        "explainer",
    ]
    for name, stages in PIPELINES.items():
        assert stages[0].previous_option is None, name
        for stage in stages:
            for config in stage.configs:
                assert (REPOSITORY / config).is_file(), f"{name}/{stage.name}: {config}"
        for stage in stages[1:]:
            option = stage.previous_option.removeprefix("model.init_args.")
            model = yaml.safe_load((REPOSITORY / stage.configs[-1]).read_text())["model"]
            assert option in model.get("init_args", {}), f"{name}/{stage.name}: {option}"
    for folder, resources in TEMPLATE_RESOURCES.items():
        assert (REPOSITORY / "experiments" / folder / "trainer.yaml").is_file(), folder
        assert isinstance(resources["time"], str), f"{folder}: time must stay a string in YAML"


def test_a_wrong_cli_in_the_yaml_is_refused_naming_the_file(tmp_path):
    tables = tmp_path / "tables.yaml"
    tables.write_text(
        yaml.safe_dump({"x": {"title": "t", "trainer": "a.yaml", "runs": {}, "cli": "sv"}})
    )
    with pytest.raises(ValueError, match=r"tables.yaml: table 'x' has cli 'sv'"):
        read_tables(tables)
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(yaml.safe_dump({"p": [{"name": "a", "configs": ["a.yaml"], "cli": "sv"}]}))
    with pytest.raises(
        ValueError, match=r"pipelines.yaml: pipeline 'p' names unknown CLIs \['sv'\]"
    ):
        read_pipelines(pipelines)


def test_every_published_row_names_a_run_of_its_table_or_why_not():
    published = read_published()
    for name, table in TABLES.items():
        if table.published is None:
            continue
        entry = published[table.published]
        assert entry["source"] and entry["columns"], name
        for row in entry["rows"]:
            if "ours" in row:
                model, _, method = row["ours"].rpartition(" / ")
                assert model in table.runs and method, f"{name}: {row}"
            assert set(entry["columns"]) & set(row), f"{name}: {row['row']} has no figure"


def test_paper_beside_ours_scales_ours_and_says_why_a_row_is_empty():
    entry = {
        "source": "s",
        "columns": {"mAP": "mAP (%)"},
        "ours_scale": 100,
        "rows": [
            {"row": "A", "mAP": 80.0, "ours": "m / a"},
            {"row": "B", "mAP": 70.0, "ours": "m / b"},
            {"row": "C", "mAP": 60.0, "not_run": "no such model"},
        ],
    }
    lined = paper_beside_ours(entry, [{"model": "m", "method": "a", "mAP": 0.75}])
    assert lined[0]["mAP paper"] == 80.0 and lined[0]["mAP ours"] == pytest.approx(75.0)
    assert lined[0]["mAP diff"] == pytest.approx(-5.0) and lined[0]["status"] == ""
    assert lined[1]["mAP ours"] == "" and lined[1]["status"] == "not in this run's rows"
    assert lined[2]["status"] == "not run: no such model"


def test_a_published_row_without_ours_or_reason_is_refused(tmp_path):
    path = tmp_path / "published.yaml"
    path.write_text(
        yaml.safe_dump(
            {"t": {"source": "s", "columns": {"a": "A"}, "rows": [{"row": "r", "a": 1}]}}
        )
    )
    with pytest.raises(ValueError, match=r"t row 'r' needs exactly one of `ours`"):
        read_published(path)


def test_zero_shot_rows_are_skipped_and_said_so_without_weights():
    from shapvision_drivers.tables import TABLES, skipped_runs

    table = TABLES["svo-retrieval"]
    skipped = skipped_runs(table, {})
    assert set(skipped) == {"CLIP zero-shot COCO", "CLIP zero-shot Flickr30k"}
    assert "pass --weights FILE" in skipped["CLIP zero-shot COCO"]
    assert skipped_runs(table, {"WEIGHTS": "/weights/eva02.pt"}) == {}
