"""Chunked forwards halve their chunk on an out-of-memory error and finish with the same values."""

import logging

import pytest
import torch

from shapvision.attribution import Attribution, ExplainedModel, create_method
from shapvision.chunked import forget_learned_chunks, map_chunks
from shapvision.metrics import ExplanationBatch, create_metric, update_metric

from .helpers import OnePatchClassifier


class RunsOutAbove:
    """A forward that raises CUDA's out-of-memory error for more than ``limit`` rows at once."""

    def __init__(self, limit: int, error=torch.OutOfMemoryError):
        self.limit, self.error, self.sizes = limit, error, []

    def __call__(self, x, y):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return (x * y).sum(1, keepdim=True)


def test_the_chunk_halves_until_it_fits_and_the_values_are_unchanged(caplog):
    x, y = torch.randn(50, 4), torch.randn(50, 4)
    expected = (x * y).sum(1, keepdim=True)
    forward = RunsOutAbove(limit=7)
    with caplog.at_level(logging.WARNING, logger="shapvision"):
        values = map_chunks(forward, x, y, chunk=32, what="test forward A")
        first = len(forward.sizes)
        again = map_chunks(forward, x, y, chunk=32, what="test forward A")
    assert torch.equal(values, expected) and torch.equal(again, expected)
    assert forward.sizes[:4] == [32, 16, 8, 4]  # halved until it fits
    # said once, and the second call starts from the chunk that fitted: no failed forward
    assert sum("test forward A ran out of memory" in r.message for r in caplog.records) == 1
    assert set(forward.sizes[first:]) <= {4, 2}


def test_a_runtime_error_saying_out_of_memory_is_retried_and_others_are_not():
    x = torch.ones(10, 2)
    legacy = RunsOutAbove(limit=3, error=RuntimeError)  # torch before OutOfMemoryError, and the CPU
    assert torch.equal(
        map_chunks(legacy, x, x, chunk=10, what="test forward B"), torch.full((10, 1), 2.0)
    )

    def broken(a, b):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        map_chunks(broken, x, x, chunk=4, what="test forward C")
    with pytest.raises(torch.OutOfMemoryError):
        map_chunks(
            RunsOutAbove(limit=0), x, x, chunk=4, what="test forward D"
        )  # not even one row fits


class OutOfMemoryAbove(OnePatchClassifier):
    """The one-patch classifier on a device that holds at most ``limit`` images per forward."""

    limit = 5

    def forward(self, images, keep=None):
        if images.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return super().forward(images, keep)


@pytest.fixture(autouse=True)
def fresh_chunks():
    forget_learned_chunks()
    yield
    forget_learned_chunks()


def test_methods_and_metrics_that_batch_forwards_finish_with_the_unconstrained_values():
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target, index = torch.tensor([0, 1, 2]), torch.arange(3)
    free = ExplainedModel(OnePatchClassifier(), "unconstrained")
    small = ExplainedModel(OutOfMemoryAbove(), "a small device")
    for name, options in (
        ("kernelshap", {"budget": 64}),
        ("rise", {"num_masks": 40}),
        ("leave_one_out", {}),
    ):
        expected = create_method(name, free, **options).explain(images, target, index).patches
        values = create_method(name, small, **options).explain(images, target, index).patches
        assert torch.allclose(values, expected, atol=1e-6), name
    for model in (free, small):
        batch = ExplanationBatch(images, target, index, model, chunk=64)
        metric = create_metric("insertion_deletion_patches", num_patches=16)
        update_metric(metric, batch, Attribution(torch.arange(16.0).expand(3, -1)), None)
        values = metric.compute()
        if model is free:
            expected = values["insertion_patches"]
    assert torch.allclose(values["insertion_patches"], expected)
