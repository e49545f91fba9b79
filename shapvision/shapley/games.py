"""Cooperative games with known structure, for validating estimators and benchmarking them.

``PairwiseInteractionGame`` has closed-form Shapley values (phi_i = a_i + 1/2 sum_j B_ij), of which
the additive game is the B = 0 case; ``MLPGame`` is a cheap nonlinear vector-valued game with no
closed form, checked against :func:`exact_shapley`.
"""

import torch


class PairwiseInteractionGame:
    """v(S) = c + sum_{i in S} a_i + sum_{i<j in S} B_ij, vector-valued over the last dim of ``a``.

    ``linear`` is ``(N,)`` or ``(N, K)``, ``interactions`` ``(N, N)`` or ``(N, N, K)`` (made symmetric,
    zero diagonal), ``constant`` a scalar or ``(K,)``.
    """

    def __init__(
        self, linear: torch.Tensor, interactions: torch.Tensor | None = None, constant=0.0
    ):
        self.linear = linear
        n = linear.shape[0]
        if interactions is None:
            interactions = linear.new_zeros((n, n) + tuple(linear.shape[1:]))
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=linear.device), diagonal=1)
        upper = upper.view(n, n, *([1] * (interactions.dim() - 2)))
        upper_part = torch.where(upper, interactions, torch.zeros_like(interactions))
        self.interactions = upper_part + upper_part.transpose(0, 1)
        self.constant = torch.as_tensor(constant, dtype=linear.dtype, device=linear.device)

    @property
    def num_players(self) -> int:
        return self.linear.shape[0]

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        z = masks.to(self.linear.dtype)
        if self.linear.dim() == 1:
            pair = 0.5 * torch.einsum("mi,ij,mj->m", z, self.interactions, z)
            return self.constant + z @ self.linear + pair
        pair = 0.5 * torch.einsum("mi,ijk,mj->mk", z, self.interactions, z)
        return self.constant + z @ self.linear + pair

    def shapley_values(self) -> torch.Tensor:
        return self.linear + 0.5 * self.interactions.sum(1)


class MLPGame:
    """v(S) = softmax(W2 tanh(W1 z + b1) + b2): a nonlinear game with K outputs summing to 1."""

    def __init__(
        self,
        num_players: int,
        num_outputs: int = 3,
        hidden: int = 32,
        generator=None,
        dtype=torch.float64,
    ):
        self.num_players = num_players
        self.w1 = (
            torch.randn(num_players, hidden, generator=generator, dtype=dtype)
            * 1.5
            / num_players**0.5
        )
        self.b1 = torch.randn(hidden, generator=generator, dtype=dtype) * 0.5
        self.w2 = (
            torch.randn(hidden, num_outputs, generator=generator, dtype=dtype) * 2.0 / hidden**0.5
        )
        self.b2 = torch.zeros(num_outputs, dtype=dtype)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(masks.to(self.w1.dtype) @ self.w1 + self.b1)
        return torch.softmax(hidden @ self.w2 + self.b2, dim=-1)
