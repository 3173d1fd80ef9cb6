"""Which dataset items each rank reads at each optimizer step: deterministic, resumable, rank-agnostic.

The global batch of one optimizer step is cut into ``world_size * accum_steps`` micro-batch *slots*; slot
``s = rank * accum_steps + a`` is read by `rank` at accumulation step `a`. Every slot's items (and, in the engine, every
slot's random draws) depend only on (seed, epoch, step, slot), never on how many processes share the work: two ranks
with one micro-batch each see exactly what one process with two accumulation steps sees. This is the distributed
sampler of the engine (it replaces torch's DistributedSampler, which cannot start mid-epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..seeding import derive_seed


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of range(num_items) that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(num_items, generator=g)


class StepBatchSampler:
    """Yields, for one epoch, this rank's micro-batches of dataset indices, from `start_step` on.

    Args:
        num_items: dataset length.
        items_per_slot: dataset items per micro-batch slot.
        world_size, rank, accum_steps: the slot layout (see module docstring).
        seed, epoch: the epoch's permutation.
        start_step: first optimizer step of the epoch to yield (resume mid-epoch).
    """

    def __init__(self, num_items: int, items_per_slot: int, world_size: int, rank: int, accum_steps: int,
                 seed: int, epoch: int, start_step: int = 0) -> None:
        self.items_per_step = items_per_slot * world_size * accum_steps
        if num_items < self.items_per_step:
            raise ValueError(f"the dataset has {num_items} items but one optimizer step needs {self.items_per_step}; "
                             "lower train.batch_size or add data")
        self.num_items, self.items_per_slot = num_items, items_per_slot
        self.world_size, self.rank, self.accum_steps = world_size, rank, accum_steps
        self.seed, self.epoch, self.start_step = seed, epoch, start_step

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // self.items_per_step  # the last partial step is dropped

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accum_steps

    def __iter__(self) -> Iterator[list[int]]:
        perm = epoch_permutation(self.num_items, self.seed, self.epoch)
        for step in range(self.start_step, self.steps_per_epoch):
            base = step * self.items_per_step
            for a in range(self.accum_steps):
                slot = self.rank * self.accum_steps + a
                lo = base + slot * self.items_per_slot
                yield perm[lo:lo + self.items_per_slot].tolist()


class RunBatchSampler:
    """`StepBatchSampler` over every pass of a run, from global step `start_step` on: one DataLoader (and one set of
    workers) for the whole run, whose prefetch runs across pass boundaries.

    Yields micro-batches of ``(pass, index)`` keys, so datasets held by persistent workers draw each item from the
    pass's seed without `set_epoch`.
    """

    def __init__(self, num_items: int, items_per_slot: int, world_size: int, rank: int, accum_steps: int,
                 seed: int, total_passes: int, start_step: int = 0) -> None:
        self.one = StepBatchSampler(num_items, items_per_slot, world_size, rank, accum_steps, seed, 0)
        self.total_passes, self.start_step = total_passes, start_step
        self.args = (num_items, items_per_slot, world_size, rank, accum_steps, seed)

    def __len__(self) -> int:
        return max(0, self.total_passes * self.one.steps_per_epoch - self.start_step) * self.one.accum_steps

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        steps = self.one.steps_per_epoch
        for p in range(self.start_step // steps, self.total_passes):
            first = max(0, self.start_step - p * steps)
            for batch in StepBatchSampler(*self.args, epoch=p, start_step=first):
                yield [(p, i) for i in batch]
