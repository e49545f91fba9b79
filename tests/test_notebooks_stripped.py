"""Notebooks are kept in git without outputs (executed by `make test-notebooks`, not stored run)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_five_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names == [
        "01_shapley_core",
        "02_vit_shapley_digits",
        "03_svo",
        "04_evaluation_table",
        "05_svo_clip",
    ]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_outputs_are_stripped(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{notebook.name} has outputs: clear them before committing"
            )
