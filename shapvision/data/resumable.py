"""A training sampler that a mid-epoch checkpoint can resume exactly.

Lightning resumes a mid-epoch checkpoint (a preempted SLURM job's HPC checkpoint) at the right batch
count, but a plain loader starts the epoch's iteration again from a fresh shuffle (Lightning #19361):
the resumed run trains on other batches than the uninterrupted one. This sampler shuffles each epoch
with ``seed + epoch`` (as DistributedSampler, whose subclass it is, so Lightning keeps it under DDP
and calls ``set_epoch``) and can start an epoch after the samples already trained on.
"""

from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    def __init__(self, dataset, *, num_replicas: int, rank: int, seed: int, drop_last: bool):
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=drop_last,
        )
        self.resume_epoch: int | None = None
        self.resume_samples = 0

    def resume_at(self, epoch: int, samples: int) -> None:
        """In ``epoch``, leave out this rank's first ``samples`` samples (those trained before the
        checkpoint). The length stays the epoch's full length, as the batch count Lightning restores."""
        self.resume_epoch, self.resume_samples = epoch, samples

    def __iter__(self):
        indices = list(super().__iter__())
        if self.epoch == self.resume_epoch:
            indices = indices[self.resume_samples :]
        return iter(indices)
