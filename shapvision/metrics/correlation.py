"""Row-wise Pearson and Spearman correlation, batched."""

import torch


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Correlation along the last dim; 0 where either row is constant."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    denom = (a.pow(2).sum(-1) * b.pow(2).sum(-1)).sqrt()
    return torch.where(denom > eps, (a * b).sum(-1) / denom.clamp_min(eps), torch.zeros_like(denom))


def rank_rows(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dim with ties broken by position (values are continuous in practice)."""
    return x.argsort(-1).argsort(-1).to(x.dtype)


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return pearson_rows(rank_rows(a), rank_rows(b))
