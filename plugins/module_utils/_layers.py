# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image layers as the store keeps them, and which of them a removal releases. Pure: no engine calls.

A layer is named by its chain ID (``chain_ids``), so a layer two images share - a pulled base, whatever their
``Parent`` links say - is one layer here, counted once. ``released()`` is the set of layers that no remaining
image and no remaining container needs after a removal: exactly what the engine frees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def chain_ids(diff_ids):
    """Layer chain IDs from RootFS.Layers: chain(0) = diff(0); chain(n) = sha256("chain(n-1) diff(n)")."""
    chains = []
    for diff in diff_ids:
        if not chains:
            chains.append(diff)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff}".encode()).hexdigest())
    return tuple(chains)


@dataclass(frozen=True)
class LayerTable:
    """The layers of every image of a snapshot."""

    chains: dict = field(default_factory=dict)  # image ID -> chain IDs, base first

    @classmethod
    def from_diff_ids(cls, layers):
        """From ``{image ID: RootFS.Layers}`` (diff IDs, base first)."""
        return cls(chains={image_id: chain_ids(diffs) for image_id, diffs in layers.items()})

    def released(self, deleted, remaining, container_images):
        """The chain IDs of the ``deleted`` images that neither a ``remaining`` image nor a container (on the image
        ``container_images`` names, deleted or not: its writable layer holds them) needs."""
        candidates = set()
        for image_id in deleted:
            candidates.update(self.chains.get(image_id, ()))
        if not candidates:
            return set()
        for image_id in remaining:
            candidates.difference_update(self.chains.get(image_id, ()))
        for image_id in container_images:
            candidates.difference_update(self.chains.get(image_id, ()))
        return candidates
