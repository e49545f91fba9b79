"""MAE-style token dropping for batches whose masks keep different numbers of patches.

Samples are sorted by their kept count and split into at most ``max_buckets`` groups of equal size;
each group is padded to its own largest count and the padding is blocked as attention keys. Under
Shapley-kernel masks (kept counts spread over 1..N-1) one padded batch would cost as much as no
dropping at all; a few buckets recover most of the saving, with a Python loop over buckets only.
"""

import torch


def bucket_by_kept_count(keep: torch.Tensor, max_buckets: int) -> list[torch.Tensor]:
    """Sample indices grouped so that kept counts within a group are close (sorted, equal-size groups)."""
    counts = keep.sum(1)
    order = counts.argsort(stable=True)
    return [group for group in order.tensor_split(min(max_buckets, keep.shape[0])) if group.numel()]


def kept_indices(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(B, K)`` of kept patches in grid order, K = max kept count, and which of them are real.

    Rows with fewer kept patches are padded with indices of removed patches; ``valid`` marks real entries.
    """
    counts = keep.sum(1)
    width = int(counts.max()) if keep.shape[0] else 0
    order = (~keep).to(torch.uint8).argsort(dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=keep.device).unsqueeze(0) < counts.unsqueeze(1)
    return order, valid


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tokens[b, index[b, k]]`` for tokens ``(B, N, ...)`` and index ``(B, K)``."""
    expanded = index.view(index.shape + (1,) * (tokens.dim() - 2)).expand(
        index.shape + tokens.shape[2:]
    )
    return tokens.gather(1, expanded)


def scatter_tokens(
    kept: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, num_patches: int
) -> torch.Tensor:
    """Inverse of :func:`gather_tokens`: ``(B, K, L)`` -> ``(B, N, L)``, zeros at removed patches."""
    out = kept.new_zeros(kept.shape[0], num_patches, kept.shape[2])
    kept = kept * valid.unsqueeze(2).to(kept.dtype)
    # Padding entries point at removed patches and carry zeros, so scatter_add leaves those rows at 0.
    return out.scatter_add(1, index.unsqueeze(2).expand_as(kept), kept)


def key_mask(valid: torch.Tensor, num_prefix: int) -> torch.Tensor | None:
    """Bool attention mask ``(B, 1, 1, P + K)``, True = may be attended; None when nothing is padded."""
    if bool(valid.all()):
        return None
    prefix = valid.new_ones(valid.shape[0], num_prefix)
    return torch.cat([prefix, valid], dim=1)[:, None, None, :]
