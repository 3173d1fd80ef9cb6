"""Seeds derived from what they belong to, so that results do not depend on process, worker or resume point."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of `parts` (stable across processes, platforms and Python versions).

    Used for dataset items (seed, epoch, index, attempt), epoch permutations (seed, epoch) and the random draws of
    each micro-batch slot (seed, step, slot).
    """
    digest = hashlib.blake2b(":".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)
