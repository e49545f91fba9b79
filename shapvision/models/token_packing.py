"""Sequence packing for token dropping: the kept tokens of several masked samples share one row.

Under Shapley-kernel masks the kept counts spread over 1..N-1 (mean N/2), so padding every sample to
the largest count costs as much as not dropping at all, and running samples in small groups wastes
matmul efficiency and sums weight gradients group by group. Instead, whole samples (their prefix
tokens, then their kept patches in grid order) are packed into rows of at most ``N + 2P`` tokens,
so a mask and its complement always share one row, and attention is block-diagonal: a token attends
only to tokens of its own sample. Every other op of a transformer block acts per token, so each
sample's outputs equal those of its own separate forward, and the blocks run once, as one batch, on
about half the tokens of the unmasked batch.

Padding positions form one-token segments of their own (they attend only to themselves, so no
softmax row is empty) and are never read back.
"""

from dataclasses import dataclass

import torch


def kept_indices(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(B, K)`` of kept patches in grid order, K = max kept count, and which of them are real.

    Rows with fewer kept patches are padded with indices of removed patches; ``valid`` marks real entries.
    """
    counts = keep.sum(1)
    width = int(counts.max()) if keep.shape[0] else 0
    order = (~keep).to(torch.uint8).argsort(dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=keep.device).unsqueeze(0) < counts.unsqueeze(1)
    return order, valid


def assign_rows(lengths: list[int], capacity: int) -> tuple[list[int], list[int], int, int]:
    """Pack samples of the given token counts into rows of at most ``capacity`` tokens.

    Longest first; each row opened by the longest remaining sample is topped up with the shortest
    remaining ones while they fit. A sample of length n and one of length ``capacity - n`` (a mask
    and its complement) therefore share a row. Returns each sample's row (-1 for length 0), its
    offset in the row, the number of rows and the longest row's fill.
    """
    if any(n > capacity for n in lengths):
        raise ValueError(f"a sample of {max(lengths)} tokens does not fit a row of {capacity}")
    order = sorted((i for i, n in enumerate(lengths) if n), key=lambda i: -lengths[i])
    row_of, offset_of = [-1] * len(lengths), [0] * len(lengths)
    rows = width = 0
    low, high = 0, len(order) - 1
    while low <= high:
        first = order[low]
        low += 1
        row_of[first], fill = rows, lengths[first]
        while low <= high and fill + lengths[order[high]] <= capacity:
            row_of[order[high]], offset_of[order[high]] = rows, fill
            fill += lengths[order[high]]
            high -= 1
        rows, width = rows + 1, max(width, fill)
    return row_of, offset_of, rows, width


@dataclass
class TokenPacking:
    """Where every kept token of a ``(B, P + N)`` token table sits in a packed ``(rows, length)`` batch.

    - ``source`` / ``target``: flat positions of the real tokens in the table and in the packed batch;
    - ``segment`` ``(rows, length)``: the sample each packed position belongs to (padding: unique < 0);
    - ``patch`` ``(rows, length)``: each position's patch index in the grid, -1 for prefix and padding.
    """

    batch: int
    seq_len: int
    rows: int
    length: int
    source: torch.Tensor
    target: torch.Tensor
    segment: torch.Tensor
    patch: torch.Tensor

    @classmethod
    def from_keep(cls, keep: torch.Tensor, num_prefix: int) -> "TokenPacking":
        batch, num_patches = keep.shape
        seq_len, device = num_prefix + num_patches, keep.device
        index, valid = kept_indices(keep)
        lengths = (valid.sum(1) + num_prefix).tolist()
        row_of, offset_of, rows, length = assign_rows(lengths, num_patches + 2 * num_prefix)
        prefix = torch.arange(num_prefix, device=device).expand(batch, -1)
        patch = torch.cat([torch.full_like(prefix, -1), index], dim=1)
        real = torch.cat([torch.ones_like(prefix, dtype=torch.bool), valid], dim=1)
        source = torch.cat([prefix, index + num_prefix], dim=1)
        source = source + seq_len * torch.arange(batch, device=device).unsqueeze(1)
        start = torch.tensor(row_of, device=device).clamp_min(0) * length
        start = start + torch.tensor(offset_of, device=device)
        target = start.unsqueeze(1) + torch.arange(real.shape[1], device=device)
        sample = torch.arange(batch, device=device).unsqueeze(1).expand_as(real)
        target = target[real]
        segment = -1 - torch.arange(rows * length, device=device)
        segment[target] = sample[real]
        patch_at = torch.full((rows * length,), -1, dtype=torch.long, device=device)
        patch_at[target] = patch[real]
        return cls(
            batch=batch,
            seq_len=seq_len,
            rows=rows,
            length=length,
            source=source[real],
            target=target,
            segment=segment.view(rows, length),
            patch=patch_at.view(rows, length),
        )

    def pack(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, P + N, ...)`` -> ``(rows, length, ...)``, zeros at padding."""
        table = tokens.reshape(self.batch * self.seq_len, *tokens.shape[2:])
        packed = table.new_zeros(self.rows * self.length, *tokens.shape[2:])
        return packed.index_copy(0, self.target, table[self.source]).view(
            self.rows, self.length, *tokens.shape[2:]
        )

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """``(rows, length, ...)`` -> ``(B, P + N, ...)``, zeros at removed patches."""
        flat = packed.reshape(self.rows * self.length, *packed.shape[2:])
        table = flat.new_zeros(self.batch * self.seq_len, *packed.shape[2:])
        return table.index_copy(0, self.source, flat[self.target]).view(
            self.batch, self.seq_len, *packed.shape[2:]
        )

    def attention_mask(self) -> torch.Tensor:
        """Bool ``(rows, length, length)``, True = may attend: the block diagonal of the samples."""
        return self.segment.unsqueeze(2) == self.segment.unsqueeze(1)
