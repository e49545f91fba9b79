"""KernelSHAP as the constrained weighted least squares problem of Covert & Lee (2021).

phi = argmin E_{S ~ p}[(v(S) - v(empty) - 1_S^T phi)^2]  s.t.  1^T phi = total = v(N) - v(empty),
with p the Shapley kernel over sizes 1..N-1. With ``A = E[z z^T]`` and ``b = E[z (v(z) - v(empty))]``
the solution is ``phi = A^{-1} (b - 1 lambda)``, lambda fixed by the constraint.

Border trick (shapiq's ``CoalitionSampler``, Fumagalli et al.): the kernel puts most of its mass on
the smallest and largest coalitions, of which there are few (2N of sizes 1 and N - 1). Sizes whose
every coalition the budget would draw in expectation, taken pairwise (k, N - k) from the border
inwards, are enumerated once and enter A and b with their exact kernel weights p(k) / C(N, k); the
other sizes are sampled from the kernel renormalised over them and weighted by their total mass. The
expectation is the kernel's, the enumerated part has no variance. The budget the rule sees is
``max_evals`` for a fixed-budget estimate (``threshold=None``), one batch when the estimate runs to
convergence (ours: an adaptive run does not know its final budget). Like shapiq's sampler, a
coalition drawn again is not evaluated again: the budget counts distinct coalitions, and every draw
enters the estimate with its multiplicity (``_EvaluatedCoalitions``).

Two estimators, as in ``shapreg``:
- default (``unbiased=False``, shapreg's ``ShapleyRegression``): A and b both averaged over the same
  samples. Their errors are correlated and largely cancel, so this converges much faster; it is
  consistent, with a bias of order 1/n. Its standard error comes from the delta method: linearising
  the KKT system gives the per-sample influence ``psi_s = P A^{-1} (b_s - A_s phi)`` with the
  projection ``P = I - u 1^T / (1^T u)``, ``u = A^{-1} 1``; ``std = std(psi) / sqrt(n)``.
- ``unbiased=True`` (shapreg's unbiased KernelSHAP): A in closed form (A_ii = 1/2, A_ij = P(i, j in S)),
  only b sampled. The estimate is linear in the b samples, so it is exactly unbiased and its standard
  error is that of the mapped samples.
"""

import math
from itertools import combinations

import torch

from shapvision.shapley.estimate import (
    RunningMoments,
    ShapleyEstimate,
    has_converged,
    validate_budget,
)
from shapvision.shapley.game import GameEvaluator, ValueFunction
from shapvision.shapley.masks import full_and_empty
from shapvision.shapley.samplers import (
    ShapleyKernelSampler,
    shapley_kernel_log_prob,
    shapley_kernel_size_probabilities,
)

# The delta-method std needs a pass over all stored samples, so it is checked whenever the sample count
# has grown by this factor rather than after every batch; the budget overshoot is bounded by it.
_CHECK_GROWTH = 1.1
# A fixed budget keeps drawing while repeated draws are free; this bounds the draws when the sampled
# sizes are nearly exhausted (a budget close to 2^N that the border trick did not enumerate).
_MAX_DRAWS_PER_EVALUATION = 20


def shapley_kernel_gram(num_players: int) -> torch.Tensor:
    """A = E_{S ~ Shapley kernel}[z z^T], float64 ``(N, N)``."""
    n = num_players
    p = shapley_kernel_size_probabilities(n)
    k = torch.arange(n + 1, dtype=torch.float64)
    co_occurrence = (p * k * (k - 1)).sum() / (n * (n - 1))
    gram = torch.full((n, n), float(co_occurrence), dtype=torch.float64)
    gram.fill_diagonal_(0.5)
    return gram


def constrained_solution_operator(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, w)`` such that the constrained solution is ``phi = T b + w total`` for any b and total."""
    ones = torch.ones(gram.shape[0], 1, dtype=gram.dtype, device=gram.device)
    gram_inv = torch.linalg.pinv(gram, hermitian=True)
    u = gram_inv @ ones
    projection = (
        torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device) - (u @ ones.T) / u.sum()
    )
    return projection @ gram_inv, (u / u.sum()).squeeze(1)


def border_sizes(num_players: int, budget: int) -> tuple[int, ...]:
    """The coalition sizes KernelSHAP enumerates within ``budget`` evaluations (the border trick).

    Pairs (k, N - k) from k = 1 inwards, while the pair's expected share of the remaining budget
    under the kernel renormalised over the remaining sizes covers all of its C(N, k) coalitions.
    """
    probabilities = shapley_kernel_size_probabilities(num_players).tolist()
    remaining_mass, enumerated = 1.0, []
    for k in range(1, num_players // 2 + 1):
        pair = sorted({k, num_players - k})
        count = sum(math.comb(num_players, s) for s in pair)
        mass = sum(probabilities[s] for s in pair)
        if count > budget or budget * mass < count * remaining_mass * (1 - 1e-12):
            break
        enumerated += pair
        budget -= count
        remaining_mass -= mass
    return tuple(sorted(enumerated))


def coalitions_of_sizes(
    sizes: tuple[int, ...], num_players: int, device: torch.device
) -> torch.Tensor:
    """Every coalition of each given size, bool ``(M, N)``."""
    rows = [torch.zeros(0, num_players, dtype=torch.bool, device=device)]
    for k in sizes:
        members = torch.tensor(list(combinations(range(num_players), k)), device=device)
        masks = torch.zeros(len(members), num_players, dtype=torch.bool, device=device)
        rows.append(masks.scatter_(1, members, True))
    return torch.cat(rows)


class _EvaluatedCoalitions:
    """A table of coalitions and their values, so that a coalition drawn again costs no game
    evaluation (shapiq's sampler likewise draws until its budget of distinct coalitions is reached).
    Every draw still enters the estimate, with its multiplicity: the estimator is the same
    with-replacement estimator, with more draws for the same evaluations. Coalitions are keyed by their
    bits, up to 62 players; above that repeats are too rare to matter and every draw is evaluated
    (``num_players=None``: every draw evaluated). Coalitions wait in the table until ``evaluate``, so
    that a fixed budget is spent in one call to the game (its per-call cost dominates small budgets)."""

    def __init__(self, num_players: int | None):
        self.bits = (
            2 ** torch.arange(num_players)
            if num_players is not None and num_players <= 62
            else None
        )
        self.known_keys = torch.zeros(0, dtype=torch.long)
        self.known_rows = torch.zeros(0, dtype=torch.long)
        self.pending: list[torch.Tensor] = []
        self.size = 0
        self.values: torch.Tensor | None = None

    def add(self, masks: torch.Tensor) -> torch.Tensor:
        """Rows of coalitions that are evaluated whatever was drawn before (v(N), v(empty), the
        enumerated sizes: never drawn by the sampler)."""
        self.pending.append(masks)
        self.size += len(masks)
        return torch.arange(self.size - len(masks), self.size, device=masks.device)

    def select(
        self, masks: torch.Tensor, budget: int, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The longest prefix of whole groups of ``step`` draws whose new coalitions fit ``budget``
        evaluations, and each draw's row; the new coalitions wait for ``evaluate``."""
        if self.bits is None:  # the caller drew no more than the budget
            return masks, self.add(masks)
        device = masks.device
        keys = (masks.long() * self.bits.to(device)).sum(1).cpu()
        unique, inverse = torch.unique(keys, return_inverse=True)
        positions = torch.arange(len(keys))
        first = torch.full((len(unique),), len(keys)).scatter_reduce_(0, inverse, positions, "amin")
        is_new = torch.zeros(len(keys), dtype=torch.bool)
        is_new[first[~torch.isin(unique, self.known_keys)]] = True
        cut = step * int((is_new.view(-1, step).sum(1).cumsum(0) <= budget).sum())
        keys, is_new = keys[:cut], is_new[:cut]
        new_keys = keys[is_new]
        self.known_keys = torch.cat([self.known_keys, new_keys])
        self.known_rows = torch.cat(
            [self.known_rows, torch.arange(self.size, self.size + len(new_keys))]
        )
        if len(new_keys):
            self.add(masks[:cut][is_new.to(device)])
        order = torch.argsort(self.known_keys)
        rows = self.known_rows[order][torch.searchsorted(self.known_keys[order], keys)]
        return masks[:cut], rows.to(device)

    def evaluate(self, game: GameEvaluator) -> None:
        """Evaluates every waiting coalition in one call of the game (float64 values)."""
        if self.pending:
            values = game(torch.cat(self.pending)).double()
            self.values = values if self.values is None else torch.cat([self.values, values])
            self.pending = []

    def values_of(self, rows: torch.Tensor) -> torch.Tensor:
        return self.values[rows]


class _SampleStore:
    """Paired (or single) masks and their gains v(S) - v(empty), kept for the delta-method std, beside
    the enumerated sizes' exact part of A and b; ``sampled_mass`` is the kernel mass of the sampled sizes."""

    def __init__(self, paired: bool, border_gram, border_b, sampled_mass: float):
        self.paired = paired
        self.masks: list[torch.Tensor] = []
        self.gains: list[torch.Tensor] = []
        self.border_gram, self.border_b, self.sampled_mass = border_gram, border_b, sampled_mass
        self.gram_sum = None
        self.b_sum = None
        self.count = 0

    def add(self, masks: torch.Tensor, gains: torch.Tensor) -> None:
        group = 2 if self.paired else 1
        z = masks.double().view(-1, group, masks.shape[-1])
        g = gains.view(-1, group, gains.shape[-1])
        gram = torch.einsum("sgi,sgj->ij", z, z) / group
        b = torch.einsum("sgi,sgk->ik", z, g) / group
        self.gram_sum = gram if self.gram_sum is None else self.gram_sum + gram
        self.b_sum = b if self.b_sum is None else self.b_sum + b
        self.masks.append(masks.view(-1, group, masks.shape[-1]))
        self.gains.append(g)
        self.count += z.shape[0]

    def solve(self, total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gram, b = self.border_gram, self.border_b
        if self.count:
            gram = gram + self.sampled_mass * self.gram_sum / self.count
            b = b + self.sampled_mass * self.b_sum / self.count
        transform, direction = constrained_solution_operator(gram)
        values = transform @ b + direction.unsqueeze(1) * total
        return values, transform

    def delta_method_std(
        self, values: torch.Tensor, transform: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        if self.sampled_mass == 0:
            return torch.zeros_like(values)
        masks, gains = torch.cat(self.masks), torch.cat(self.gains)
        group = masks.shape[1]
        sum_sq = torch.zeros_like(values)
        for z, g in zip(masks.split(chunk), gains.split(chunk), strict=True):
            z = z.double()
            residual = g - torch.einsum("sgi,ik->sgk", z, values)
            influence = (
                transform @ torch.einsum("sgj,sgk->sjk", z, residual) * (self.sampled_mass / group)
            )
            sum_sq += (influence**2).sum(0)
        # The influences have mean exactly zero at the solution, so their variance is the mean square.
        return (sum_sq / (self.count - 1) / self.count).sqrt()


def _draws(
    sampler: ShapleyKernelSampler,
    table: _EvaluatedCoalitions,
    max_evals: int,
    batch: int,
    step: int,
    generator: torch.Generator | None,
    device: torch.device,
):
    """Draws within the budget, at most ``batch`` new evaluations at a time, each with its rows in
    ``table``. Draws continue while repeated coalitions leave evaluations unspent, up to
    ``_MAX_DRAWS_PER_EVALUATION`` draws per evaluation (the sampled sizes nearly exhausted)."""
    draws = 0
    while (budget := min(batch, max_evals - table.size)) >= step:
        if draws > _MAX_DRAWS_PER_EVALUATION * max_evals:
            return
        budget -= budget % step
        masks = sampler.sample(budget, generator=generator, device=device)
        draws += len(masks)
        masks, rows = table.select(masks, budget, step)
        if not len(masks):
            return
        yield masks, rows


def kernel_shap(
    value_fn: ValueFunction,
    num_players: int,
    *,
    paired: bool = True,
    threshold: float | None = 0.01,
    max_evals: int = 2**17,
    batch_size: int = 64,
    unbiased: bool = False,
    border: bool = True,
    reuse_repeats: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ShapleyEstimate:
    """KernelSHAP estimate of the Shapley values of ``value_fn``.

    Samples coalitions from the Shapley kernel (``paired`` appends complements) ``batch_size`` evaluations
    at a time until the Covert & Lee rule ``max std / (max phi - min phi) < threshold`` holds or
    ``max_evals`` evaluations (v(N) and v(empty) included) are spent. ``threshold=None`` always spends
    the whole budget, for comparisons at equal cost: every coalition is drawn first and the game is
    called once (in chunks of ``batch_size``). ``unbiased`` selects the estimator, ``border``
    enumerates the border sizes that fit (module docstring); ``reuse_repeats`` evaluates a coalition
    drawn again only once, so the budget counts distinct coalitions (``_EvaluatedCoalitions``).
    """
    validate_budget(max_evals, 6 if paired else 4, "kernel_shap (two samples to estimate a std)")
    if num_players < 2:
        raise ValueError(f"kernel_shap needs at least 2 players, got num_players={num_players}")
    if paired and batch_size % 2:
        raise ValueError(f"paired KernelSHAP needs an even batch_size, got {batch_size}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    game = GameEvaluator(value_fn, num_players, batch_size)
    step = 2 if paired else 1
    enumerated = (
        border_sizes(num_players, max_evals - 2 if threshold is None else batch_size)
        if border
        else ()
    )
    border_masks = coalitions_of_sizes(enumerated, num_players, device)
    everything_enumerated = len(enumerated) == num_players - 1
    sampler = (
        None
        if everything_enumerated
        else ShapleyKernelSampler(num_players, paired=paired, excluded_sizes=enumerated)
    )
    table = _EvaluatedCoalitions(num_players if reuse_repeats else None)
    ends = table.add(full_and_empty(num_players, device))
    border_rows = table.add(border_masks)
    # A fixed budget draws every sample first, so the game is called once in all.
    drawn = (
        list(_draws(sampler, table, max_evals, max_evals, step, generator, device))
        if threshold is None and sampler is not None
        else []
    )
    table.evaluate(game)
    v_full, v_empty = table.values_of(ends)
    total = v_full - v_empty
    z = border_masks.double()
    weights = shapley_kernel_log_prob(border_masks).exp()
    border_gains = table.values_of(border_rows) - v_empty
    border_gram = torch.einsum("s,si,sj->ij", weights, z, z)
    border_b = torch.einsum("s,si,sk->ik", weights, z, border_gains)
    sampled_mass = 1.0 - float(
        shapley_kernel_size_probabilities(num_players)[list(enumerated)].sum()
    )

    if unbiased:
        transform, direction = constrained_solution_operator(
            shapley_kernel_gram(num_players).to(device)
        )
        offset = direction.unsqueeze(1) * total + transform @ border_b
        moments = RunningMoments()
    else:
        store = _SampleStore(paired, border_gram, border_b, sampled_mass)
        next_check = 2

    def current(final: bool):
        if unbiased:
            if moments.mean is None:  # nothing sampled: exact if every size was enumerated
                return offset, torch.full_like(offset, 0.0 if everything_enumerated else math.inf)
            return moments.mean + offset, moments.standard_error()
        values, solve_transform = store.solve(total)
        if not final and store.count < next_check:
            return values, None
        if store.count < 2 and not everything_enumerated:
            return values, torch.full_like(values, math.inf)
        return values, store.delta_method_std(values, solve_transform)

    def add_samples(masks: torch.Tensor, rows: torch.Tensor) -> int:
        gains = table.values_of(rows) - v_empty
        if unbiased:
            b_terms = (masks.double().unsqueeze(2) * gains.unsqueeze(1)).view(
                len(masks) // step, step, num_players, -1
            )
            moments.update(torch.einsum("ij,sgjk->sik", transform, b_terms) * (sampled_mass / step))
            return moments.count
        store.add(masks, gains)
        return store.count

    for masks, rows in drawn:
        add_samples(masks, rows)
    converged = everything_enumerated
    adaptive = (
        _draws(sampler, table, max_evals, batch_size, step, generator, device)
        if threshold is not None and not converged
        else ()
    )
    for masks, rows in adaptive:
        table.evaluate(game)
        count = add_samples(masks, rows)
        if count < 2:
            continue
        values, std = current(final=False)
        if std is None:
            continue
        if not unbiased:
            next_check = max(count + 1, math.ceil(count * _CHECK_GROWTH))
        if has_converged(values, std, threshold):
            converged = True
            break
    values, std = current(final=True)
    return ShapleyEstimate(game.finalize(values), game.finalize(std), game.num_evals, converged)
