import os

import pytest
import torch

from .helpers import working_copy

# Two cores: keep intra-op threads from oversubscribing when pytest-xdist or DDP workers run.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def isolated_working_directory(tmp_path_factory, monkeypatch):
    """Every test runs in a temporary directory of its own, with the repository's experiments/ linked
    in: configs are found by their usual relative paths, and whatever a test, a CLI or Lightning
    writes relative to the working directory (runs/, lightning_logs/, config.yaml, Lightning's
    default root) lands there, never in the repository. Module-scoped fixtures, set up before it,
    pass their own temporary ``cwd``."""
    folder = working_copy(tmp_path_factory.mktemp("cwd"))
    monkeypatch.chdir(folder)
    return folder
