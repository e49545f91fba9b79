"""Coalition samplers: bool masks ``(M, N)`` or ``(B, M, N)``, True = patch kept.

Every sampler draws subset *sizes* first and then a uniform (or score-weighted) subset of exactly
that size, so the size distribution is exact rather than approximate as with independent Bernoulli
draws. All randomness goes through the ``generator`` argument, so a fixed seed fixes the masks.
"""

import math

import torch


def shapley_kernel_log_prob(masks: torch.Tensor) -> torch.Tensor:
    """log p(S) of masks ``(..., N)`` under the Shapley kernel as :class:`ShapleyKernelSampler` draws
    it: p(|S|) / C(N, |S|) (-inf for the empty and the full coalition)."""
    num_players = masks.shape[-1]
    sizes = masks.sum(-1)
    log_size = shapley_kernel_size_probabilities(num_players).to(masks.device).log()
    log_binomial = torch.tensor(
        [
            math.lgamma(num_players + 1) - math.lgamma(k + 1) - math.lgamma(num_players - k + 1)
            for k in range(num_players + 1)
        ],
        dtype=torch.float64,
        device=masks.device,
    )
    return log_size[sizes] - log_binomial[sizes]


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

    ``excluded_sizes`` removes sizes from the draw (the kernel renormalised over the rest): KernelSHAP
    enumerates those sizes exactly instead (its border trick).

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

    def __init__(
        self,
        num_players: int,
        paired: bool = False,
        balanced_sizes: bool = False,
        excluded_sizes: tuple[int, ...] = (),
    ):
        self.num_players = num_players
        self.paired = paired
        self.balanced_sizes = balanced_sizes
        probabilities = shapley_kernel_size_probabilities(num_players)
        probabilities[list(excluded_sizes)] = 0.0
        if paired and any(num_players - k not in excluded_sizes for k in excluded_sizes):
            raise ValueError(
                f"paired sampling draws a size and its complement: excluded_sizes {excluded_sizes} "
                f"must contain N - k for each k (N = {num_players})"
            )
        if probabilities.sum() <= 0:
            raise ValueError(f"excluded_sizes {excluded_sizes} leave no size to sample")
        self.size_probabilities = (probabilities / probabilities.sum()).float()

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


def suffix_log_elementary_symmetric(log_weights: torch.Tensor) -> torch.Tensor:
    """log e_r(w_i, ..., w_{N-1}) ``(B, N + 1, N + 1)`` indexed ``[b, i, r]``, for weights w = exp(log_weights) ``(B, N)``.

    e_r of the players from i on: e_0 = 1, e_r = e_r(w_{i+1:}) + w_i e_{r-1}(w_{i+1:}); -inf where r
    exceeds the players left. In log space, so weights spanning many orders of magnitude stay exact.
    """
    batch, n = log_weights.shape
    log_weights = log_weights.double()
    table = log_weights.new_full((batch, n + 1, n + 1), float("-inf"))
    table[:, :, 0] = 0.0
    for i in range(n - 1, -1, -1):
        later = table[:, i + 1]
        table[:, i, 1:] = torch.logaddexp(later[:, 1:], log_weights[:, i : i + 1] + later[:, :-1])
    return table


def conditional_bernoulli_subsets(
    log_weights: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Subsets ``(B, M, N)`` of exactly ``sizes`` ``(B, M)`` players with P(S) proportional to prod_{i in S} w_i.

    This is conditional Bernoulli (conditional Poisson) sampling: independent inclusions with odds
    w_i, conditioned on the size. Players are decided in order; player i is kept with probability
    w_i e_{r-1}(w_{i+1:}) / e_r(w_{i:}) when r are still to be chosen, which gives exactly that law, and
    its probability is tractable (:func:`conditional_bernoulli_log_prob`).
    """
    table = suffix_log_elementary_symmetric(log_weights)
    batch, n = log_weights.shape
    num_masks = sizes.shape[1]
    remaining = sizes.clone().long()
    uniform = torch.rand((batch, num_masks, n), generator=generator, device=sizes.device)
    masks = torch.zeros((batch, num_masks, n), dtype=torch.bool, device=sizes.device)
    log_w = log_weights.double()
    for i in range(n):
        here, later = table[:, i], table[:, i + 1]
        choose = remaining.clamp_min(1)
        log_keep = log_w[:, i : i + 1] + later.gather(1, choose - 1) - here.gather(1, remaining)
        keep = (remaining > 0) & (uniform[..., i].double() < log_keep.exp())
        masks[..., i] = keep
        remaining = remaining - keep.long()
    return masks


def conditional_bernoulli_log_prob(log_weights: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """log P(S | |S|) ``(B, M)`` of masks ``(B, M, N)`` under conditional Bernoulli sampling with
    weights exp(log_weights) ``(B, N)``: sum_{i in S} log w_i - log e_{|S|}(w)."""
    table = suffix_log_elementary_symmetric(log_weights)
    sizes = masks.sum(-1)
    kept = (masks.double() * log_weights.double().unsqueeze(1)).sum(-1)
    return kept - table[:, 0].gather(1, sizes)


class AttributionGuidedSampler:
    """Masks that favour patches by their current attribution (Salvage's attribution-guided sampling).

    The Salvage paper draws half of the masks with inclusion probabilities increasing in phi and half
    decreasing in phi, without publishing the scheme; ours is this distribution, chosen so that the
    probability of every mask is tractable (Salvage's poster asks for importance sampling, which needs it):

    1. the size k is drawn from the Shapley kernel (1..N-1), as for :class:`ShapleyKernelSampler`;
    2. scores are standardised per image, ``z = (s - mean(s)) / std(s)``, so ``temperature`` is scale-free;
    3. the first half of the masks draws a k-subset with probability proportional to
       ``prod_{i in S} exp(z_i / T)`` (conditional Bernoulli sampling), the second half with ``exp(-z_i / T)``.

    The two halves mirror each other: the complement of a first-half mask has the law of a second-half
    mask (sizes k and N - k are equally likely), so the mixture ``q`` of the halves gives a mask and its
    complement the same probability, and paired sampling (a mask, then its complement) keeps every
    mask's law ``q``. As ``temperature -> inf`` this becomes :class:`ShapleyKernelSampler`; as it goes to
    0 the masks become the top-k (first half) and bottom-k (second half) patches.
    """

    def __init__(self, num_players: int, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_players = num_players
        self.temperature = temperature
        self.size_probabilities = shapley_kernel_size_probabilities(
            num_players, dtype=torch.float32
        )

    def check_scores(self, scores: torch.Tensor) -> None:
        if scores.dim() != 2 or scores.shape[1] != self.num_players:
            raise ValueError(
                f"scores must have shape (B, {self.num_players}), got {tuple(scores.shape)}"
            )

    def log_weights(self, scores: torch.Tensor) -> torch.Tensor:
        """exp(z / T) in log space ``(B, N)``: the first half's inclusion weights (the second's: minus)."""
        scores = scores.detach().double()
        std = scores.std(1, keepdim=True).clamp_min(1e-12)
        return (scores - scores.mean(1, keepdim=True)) / std / self.temperature

    def sample(
        self,
        scores: torch.Tensor,
        num_masks: int,
        *,
        generator: torch.Generator | None = None,
        paired: bool = False,
    ) -> torch.Tensor:
        """Masks ``(B, num_masks, N)`` for per-image scores ``(B, N)``; ``num_masks`` must be even.

        ``paired``: the first-half draws, each followed by its complement (which has the second
        half's law), instead of independent draws for the second half.
        """
        self.check_scores(scores)
        if num_masks % 2:
            raise ValueError(
                f"attribution-guided sampling needs an even num_masks (half +phi, half -phi), got {num_masks}"
            )
        batch, half = scores.shape[0], num_masks // 2
        log_w = self.log_weights(scores)
        probs = self.size_probabilities.to(scores.device)
        drawn = half if paired else num_masks
        sizes = torch.multinomial(probs, batch * drawn, replacement=True, generator=generator).view(
            batch, drawn
        )
        if paired:
            masks = conditional_bernoulli_subsets(log_w, sizes, generator)
            return torch.stack([masks, ~masks], dim=-2).flatten(-3, -2)
        positive = conditional_bernoulli_subsets(log_w, sizes[:, :half], generator)
        negative = conditional_bernoulli_subsets(-log_w, sizes[:, half:], generator)
        return torch.cat([positive, negative], dim=1)

    def log_prob(self, scores: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """log q(S) ``(B, M)`` of masks ``(B, M, N)`` under the even mixture of the two halves."""
        self.check_scores(scores)
        log_w = self.log_weights(scores)
        sizes = masks.sum(-1)
        log_size = shapley_kernel_size_probabilities(self.num_players).to(masks.device).log()[sizes]
        mixture = torch.logaddexp(
            conditional_bernoulli_log_prob(log_w, masks),
            conditional_bernoulli_log_prob(-log_w, masks),
        )
        return log_size + mixture - math.log(2)
