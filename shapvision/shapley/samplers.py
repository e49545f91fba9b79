"""Coalition samplers: bool masks ``(M, N)`` or ``(B, M, N)``, True = patch kept.

Every sampler draws subset *sizes* first and then a uniform (or score-weighted) subset of exactly
that size, so the size distribution is exact rather than approximate as with independent Bernoulli
draws. All randomness goes through the ``generator`` argument, so a fixed seed fixes the masks.
"""

import torch


def shapley_kernel_size_probabilities(num_players: int, dtype=torch.float64) -> torch.Tensor:
    """p(k) for k = 0..N under the Shapley kernel: proportional to 1 / (k (N - k)) for 0 < k < N, 0 otherwise."""
    if num_players < 2:
        raise ValueError(
            f"the Shapley kernel needs at least 2 players, got num_players={num_players}"
        )
    sizes = torch.arange(num_players + 1, dtype=dtype)
    weights = torch.zeros(num_players + 1, dtype=dtype)
    inner = sizes[1:-1]
    weights[1:-1] = 1.0 / (inner * (num_players - inner))
    return weights / weights.sum()


def subsets_of_size(
    sizes: torch.Tensor,
    num_players: int,
    generator: torch.Generator | None,
    scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """One subset per entry of ``sizes`` (any shape S), returned as bool ``S + (N,)``.

    Without ``scores`` the subset is uniform among those of its size. With ``scores`` (broadcastable
    to ``S + (N,)``) the players are drawn one after another without replacement with probabilities
    proportional to ``exp(scores)`` (Plackett-Luce), implemented as the top-k of Gumbel-perturbed scores.
    """
    shape = tuple(sizes.shape) + (num_players,)
    noise = torch.rand(shape, generator=generator, device=sizes.device)
    if scores is not None:
        gumbel = -torch.log(-torch.log(noise.clamp_min(torch.finfo(noise.dtype).tiny)))
        noise = scores + gumbel
    # rank[..., i] = position of player i when sorted by decreasing key; keep the first k.
    order = noise.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(num_players, device=sizes.device).expand(shape))
    return rank < sizes.unsqueeze(-1)


def _leading_shape(num_masks: int, batch_size: int | None) -> tuple[int, ...]:
    return (num_masks,) if batch_size is None else (batch_size, num_masks)


def _resolve_device(device, generator):
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


class ShapleyKernelSampler:
    """Masks whose size k in 1..N-1 has probability proportional to (N-1) / (k (N-k)), uniform within a size.

    With ``paired=True`` every sampled mask is followed by its complement (the complement's size
    N - k has the same kernel probability), which is what KernelSHAP and FastSHAP-style training use
    to cut variance; ``num_masks`` must then be even.

    With ``balanced_sizes=True`` and a ``batch_size``, the images of the batch are paired at random
    and the second image of each pair gets, mask for mask, the complementary size N - k of the
    first's (its subset is drawn independently). Every mask keeps the kernel distribution, since
    p(k) = p(N - k), so expectations over masks are unchanged; but the kept patches of a batch
    total exactly half of all patches (odd batches: but for one image), which is what a masked
    forward that drops removed tokens pays for, instead of a total that varies widely between draws.
    Paired masks already keep exactly half, so ``balanced_sizes`` changes nothing with ``paired``.
    """

    def __init__(self, num_players: int, paired: bool = False, balanced_sizes: bool = False):
        self.num_players = num_players
        self.paired = paired
        self.balanced_sizes = balanced_sizes
        self.size_probabilities = shapley_kernel_size_probabilities(
            num_players, dtype=torch.float32
        )

    def sample(
        self,
        num_masks: int,
        *,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Bool masks ``(num_masks, N)``, or ``(batch_size, num_masks, N)`` when ``batch_size`` is given."""
        if self.paired and num_masks % 2:
            raise ValueError(
                f"paired sampling needs an even number of masks, got num_masks={num_masks}"
            )
        device = _resolve_device(device, generator)
        drawn = num_masks // 2 if self.paired else num_masks
        shape = _leading_shape(drawn, batch_size)
        probs = self.size_probabilities.to(device)
        sizes = torch.multinomial(
            probs, int(torch.Size(shape).numel()), replacement=True, generator=generator
        ).view(shape)
        if self.balanced_sizes and not self.paired and batch_size is not None:
            sizes = self._complement_across_batch(sizes, generator)
        masks = subsets_of_size(sizes, self.num_players, generator)
        if self.paired:
            masks = torch.stack([masks, ~masks], dim=-2).flatten(-3, -2)
        return masks

    def _complement_across_batch(
        self, sizes: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        order = torch.randperm(sizes.shape[0], generator=generator, device=sizes.device)
        half = sizes.shape[0] // 2
        first, second = order[:half], order[half : 2 * half]
        sizes = sizes.clone()
        sizes[second] = self.num_players - sizes[first]
        return sizes


class UniformSizeSampler:
    """Masks whose size is uniform in 0..N, uniform within a size (ViT-Shapley surrogate training)."""

    def __init__(self, num_players: int):
        self.num_players = num_players

    def sample(
        self,
        num_masks: int,
        *,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        device = _resolve_device(device, generator)
        shape = _leading_shape(num_masks, batch_size)
        sizes = torch.randint(0, self.num_players + 1, shape, generator=generator, device=device)
        return subsets_of_size(sizes, self.num_players, generator)


class AttributionGuidedSampler:
    """Masks that favour patches by their current attribution (Salvage's attribution-guided sampling).

    The Salvage paper draws half of the masks with inclusion probabilities increasing in phi and half
    decreasing in phi, without publishing the scheme; ours is exactly this distribution:

    1. the size k is drawn from the Shapley kernel (1..N-1), as for :class:`ShapleyKernelSampler`;
    2. scores are standardised per image, ``z = (s - mean(s)) / std(s)``, so ``temperature`` is scale-free;
    3. the first half of the masks draws k patches without replacement with probabilities proportional
       to ``exp(z / temperature)`` (Plackett-Luce, via Gumbel-top-k); the second half uses ``exp(-z / temperature)``.

    As ``temperature -> inf`` this becomes :class:`ShapleyKernelSampler`; as it goes to 0 the masks
    become the top-k (first half) and bottom-k (second half) patches.
    """

    def __init__(self, num_players: int, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_players = num_players
        self.temperature = temperature
        self.size_probabilities = shapley_kernel_size_probabilities(
            num_players, dtype=torch.float32
        )

    def sample(
        self, scores: torch.Tensor, num_masks: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Masks ``(B, num_masks, N)`` for per-image scores ``(B, N)``; ``num_masks`` must be even."""
        if scores.dim() != 2 or scores.shape[1] != self.num_players:
            raise ValueError(
                f"scores must have shape (B, {self.num_players}), got {tuple(scores.shape)}"
            )
        if num_masks % 2:
            raise ValueError(
                f"attribution-guided sampling needs an even num_masks (half +phi, half -phi), got {num_masks}"
            )
        batch = scores.shape[0]
        scores = scores.detach().float()
        z = (scores - scores.mean(1, keepdim=True)) / scores.std(1, keepdim=True).clamp_min(1e-12)
        half = num_masks // 2
        signs = torch.cat([scores.new_ones(half), -scores.new_ones(half)])
        keys = signs.view(1, num_masks, 1) * z.unsqueeze(1) / self.temperature
        probs = self.size_probabilities.to(scores.device)
        sizes = torch.multinomial(probs, batch * num_masks, replacement=True, generator=generator)
        return subsets_of_size(
            sizes.view(batch, num_masks), self.num_players, generator, scores=keys
        )
