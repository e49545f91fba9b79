"""The drivers' experiment data is YAML beside the configs: the seeds' tables, the SLURM pipelines and
the templates' resources name configs that exist, and a wrong entry is refused naming the file."""

import pytest
import yaml

from shapvision_drivers.slurm import PIPELINES, SEED_TABLES, TEMPLATE_RESOURCES, read_pipelines
from shapvision_drivers.tables import CLIS, TABLES, read_tables

from .helpers import REPOSITORY


def test_every_table_names_existing_configs_and_a_known_cli():
    assert {"demo", "compare-digits", "svo-faithfulness", "demo-clip"} <= set(TABLES)
    for name, table in TABLES.items():
        assert table.cli in CLIS, name
        for config in (table.trainer, *table.runs.values()):
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
