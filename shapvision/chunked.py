"""Chunked forwards that survive running out of memory: the chunk halves and the failed slice is run
again, so an evaluation finishes with the values an unconstrained run gives (every slice is computed
independently of the others) instead of crashing.

Each call site names itself (``what``); the first halving of a site is logged once, and the smaller
chunk is kept for that site's later calls in the process, so a table over 50,000 images does not hit
the same error on every batch. An error at a chunk of one, or any other error, is raised as it is.
"""

import logging
from collections.abc import Callable

import torch

log = logging.getLogger("shapvision")

_largest_chunk_that_fits: dict[str, int] = {}


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def map_chunks(
    fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, chunk: int, what: str
) -> torch.Tensor:
    """``fn`` on consecutive slices (dim 0) of ``tensors``, at most ``chunk`` rows at a time, its
    outputs concatenated on dim 0; on an out-of-memory error the chunk halves and the slice reruns."""
    if chunk < 1:
        raise ValueError(f"{what}: the chunk must be >= 1, got {chunk}")
    total = tensors[0].shape[0]
    size_limit = min(chunk, _largest_chunk_that_fits.get(what, chunk))
    outputs, start = [], 0
    while start < total:
        size = min(size_limit, total - start)
        try:
            outputs.append(fn(*(t[start : start + size] for t in tensors)))
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err) or size == 1:
                raise
            size_limit = max(1, size // 2)
            if what not in _largest_chunk_that_fits:
                log.warning(
                    "%s ran out of memory at %d forwards per chunk: retrying with %d (and smaller "
                    "if needed); lower the chunk option to avoid the retries",
                    what,
                    size,
                    size_limit,
                )
            _largest_chunk_that_fits[what] = size_limit
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start += size
    if not outputs:
        return fn(*(t[:0] for t in tensors))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def forget_learned_chunks() -> None:
    """Start every call site from its requested chunk again (a new device, or a test)."""
    _largest_chunk_that_fits.clear()
