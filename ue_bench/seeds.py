"""Seeds per role: what a cell seed gives the surrogate, the victim and the trainer a data owner checks
a copy with, drawn apart so that they share nothing a real trainer would not share.

The threat model (README, *Threat model*): the data owner picks the data and a surrogate architecture;
it never knows a trainer's initial weights, seed, batch order or augmentation draws. Seeding the
surrogate and the victim with the same number made a same-architecture victim start from the
surrogate's exact weights (``torch.equal`` tensor for tensor), a leak that carried most of MEM's
protection at CPU scale. Each role now draws from ``numpy.random.SeedSequence([seed, tag])`` with its
own tag, so the surrogate, the victim and the printed trainer command are seeded independently of
each other, and the surrogate's 63-bit init seed is no plain small ``--seed N`` a trainer would use.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

#: One tag per role (ASCII of the role's name); a new role gets a new tag, an existing tag never changes.
ROLES = {
    "surrogate-init": 0x53494E49,  # the surrogate's initial weights
    "surrogate-train": 0x53545241,  # the order, caption picks and views of a surrogate's clean training
    "victim-init": 0x56494E49,  # a victim's initial weights
    "victim-train": 0x56545241,  # a victim's batch order, caption picks and augmentation draws
    "trainer": 0x54524E52,  # the --seed of the open_clip trainer command ``ue-bench protect`` prints
    "attack-adversary": 0x41445652,  # the random starts of an attack's inner adversary (REM)
    "defense-holdout": 0x484F4C44,  # which published pairs a defense holds out to validate on (early-stop)
}


def role_seed(seed: int, role: str, member: int = 0) -> int:
    """A 63-bit seed for ``role`` (a key of :data:`ROLES`) derived from the cell ``seed`` (0 ≤ seed < 2³²);
    ``member`` > 0 draws apart the seed of another model in the same role (the surrogates of an ensemble,
    ``mem-ensemble``); member 0 is the role's own seed.

    Raises KeyError for an unknown role."""
    state = np.random.SeedSequence([seed, ROLES[role], *([member] if member else [])]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def trainer_seed(seed: int) -> int:
    """The ``--seed`` of the printed open_clip trainer command for protection ``seed``: 31 bits (open_clip
    seeds numpy with ``seed + rank``, which must stay below 2³²), drawn apart from every other role."""
    return role_seed(seed, "trainer") % (2 ** 31)


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 of a model's state dict: every tensor's name, dtype, shape and bytes, in key order (hex)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
