# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Image layers as the store keeps them, which of them a removal releases, and how many bytes that frees. Pure:
no engine calls.

A layer is named by its chain ID (``chain_ids``), so a layer two images share - a pulled base, whatever their
``Parent`` links say - is one layer here, counted once. ``released()`` is the set of layers that no remaining
image and no remaining container needs after a removal: exactly what the engine frees.

``space()`` is the size of those layers, each counted once (see docs/space.md). The engine lists every image with
its ``Size``: the sum of its layers (on the classic store), or its layers and its content - compressed layer blobs,
config and manifest - (on the containerd store). Those totals give the size of every layer chain that is the top
of some image; the sum over the released layers telescopes, so only the chains where released branches meet
or end inside another image's layers need more: ``missing()`` names them, with an image whose history
(``GET /images/<id>/history``, the per-layer sizes) gives them, and ``with_histories()`` adds those sizes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"  # the empty tar's diff ID


def chain_ids(diff_ids):
    """Layer chain IDs from RootFS.Layers: chain(0) = diff(0); chain(n) = sha256("chain(n-1) diff(n)")."""
    chains = []
    for diff in diff_ids:
        if not chains:
            chains.append(diff)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff}".encode()).hexdigest())
    return tuple(chains)


def align_history(sizes, diff_ids):
    """Per-layer sizes, base first, from the ``Size`` of each history entry (the engine's order: newest first).

    The engine gives a size only to the entries that made a layer, in the order of ``RootFS.Layers``; the answer
    does not say which entries those are. The entries with a size are the layers; when there are fewer of them
    than layers, the empty tar's layers take 0 and the others the sizes in order (a layer of 0 bytes that is not
    the empty tar may then be placed wrongly: the sizes it moves are the ones beside it).
    """
    entries = [int(size or 0) for size in reversed(list(sizes))]
    nonzero = [size for size in entries if size > 0]
    if len(nonzero) == len(diff_ids):
        return tuple(nonzero)
    given = iter(nonzero)
    return tuple(0 if diff == EMPTY_LAYER else next(given, 0) for diff in diff_ids)


@dataclass(frozen=True)
class LayerTable:
    """The layers of every image of a snapshot, and the sizes the engine gives for them."""

    chains: dict = field(default_factory=dict)  # image ID -> chain IDs, base first
    diffs: dict = field(default_factory=dict)  # image ID -> diff IDs (RootFS.Layers), base first
    totals: dict = field(default_factory=dict)  # image ID -> the listed Size (bytes the engine counts for it)
    histories: dict = field(default_factory=dict)  # image ID -> per-layer sizes aligned with its chains (a few)
    # what chains and totals give (tops, parents, holders), built once: with_histories() passes it on, the
    # histories do not change it
    _derived: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_diff_ids(cls, layers, totals=None):
        """From ``{image ID: RootFS.Layers}`` (diff IDs, base first) and ``{image ID: listed Size}``."""
        return cls(chains={image_id: chain_ids(diffs) for image_id, diffs in layers.items()},
                   diffs={image_id: tuple(diffs) for image_id, diffs in layers.items()}, totals=dict(totals or {}))

    @classmethod
    def from_parents(cls, snapshot):
        """Without the images' layers: each image taken as its parent's layers plus one of its own (the model the
        ``Parent`` links give; layers shared without a ``Parent`` link are then not seen as shared)."""
        by_id = snapshot.by_id()
        chains = {}

        def chain(image_id, seen=()):
            if image_id in chains:
                return chains[image_id]
            image = by_id[image_id]
            below = () if not image.parent or image.parent not in by_id or image.parent in seen else \
                chain(image.parent, seen + (image_id,))
            chains[image_id] = below + (image_id,)
            return chains[image_id]

        for image in snapshot.images:
            chain(image.id)
        return cls(chains=chains, totals={image.id: image.size for image in snapshot.images})

    def with_histories(self, histories):
        """The table with the per-layer sizes of ``{image ID: history sizes, newest first}`` added."""
        aligned = dict(self.histories)
        for image_id, sizes in histories.items():
            if image_id in self.chains:
                aligned[image_id] = align_history(sizes, self.diffs.get(image_id, self.chains[image_id]))
        return replace(self, histories=aligned)

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

    def parents(self):
        """{chain ID: the chain ID of the layer below it, None for a base layer} (the first image's word on it)."""
        if "parents" not in self._derived:
            parents = {}
            for chains in self.chains.values():
                for index, chain in enumerate(chains):
                    if chain not in parents:
                        parents[chain] = chains[index - 1] if index else None
            self._derived["parents"] = parents
        return self._derived["parents"]

    def holders(self):
        """{chain ID: the IDs of the images that hold it, in the table's order}."""
        if "holders" not in self._derived:
            holders = {}
            for image_id, chains in self.chains.items():
                for chain in set(chains):
                    holders.setdefault(chain, []).append(image_id)
            self._derived["holders"] = holders
        return self._derived["holders"]

    # -- sizes ----------------------------------------------------------------------------------------------
    def _tops(self):
        """{chain ID: (the smallest listed Size of the images whose top layer it is, that image)} (built once)."""
        if "tops" in self._derived:
            return self._derived["tops"]
        tops = {}
        for image_id, chains in self.chains.items():
            if not chains or image_id not in self.totals:
                continue
            value = (self.totals[image_id], image_id)
            if chains[-1] not in tops or value < tops[chains[-1]]:
                tops[chains[-1]] = value
        self._derived["tops"] = tops
        return tops

    def _weights(self, released):
        """{chain ID: weight} of the telescoped sum: space = sum(weight * bytes up to and including that chain).

        A released layer counts +1, and -1 on its parent (the layer below it): a released layer with one released
        layer above it cancels out, so only the tops of released branches, the layers where they meet, and the
        kept layers they stand on remain."""
        parents = self.parents()
        weights = {}
        for chain in released:
            weights[chain] = weights.get(chain, 0) + 1
            parent = parents.get(chain)
            if parent is not None:
                weights[parent] = weights.get(parent, 0) - 1
        return {chain: weight for chain, weight in weights.items() if weight}

    def _sets(self, deleted, remaining, container_images, released=None):
        if released is None:
            released = self.released(deleted, remaining, container_images)
        return released, self._weights(released), self._tops()

    def missing(self, deleted, remaining, container_images, released=None):
        """The images whose history ``space()`` needs for these sets: for each chain whose size up to it is not an
        image's listed total, the remaining image with the fewest layers that holds it. Only images that stay are
        read, so the real run can read them after its deletions and reports what check mode reports; a chain that
        no remaining image holds (released layers that meet inside deleted images only) is estimated.
        ``released``: ``released()`` of these sets, when the caller has it (it depends on the layers only)."""
        _released, weights, tops = self._sets(deleted, remaining, container_images, released)
        staying = set(remaining) | set(container_images)
        holding = self.holders()
        wanted = set()
        for chain in weights:
            if chain in tops or self._located(chain) is not None:
                continue
            holders = [image_id for image_id in holding.get(chain, ()) if image_id in staying]
            if holders:
                wanted.add(min(holders, key=lambda i: (len(self.chains[i]), i)))
        return sorted(wanted)

    def _located(self, chain):
        for image_id, sizes in self.histories.items():
            chains = self.chains.get(image_id, ())
            if chain in chains and image_id in self.totals:
                return image_id, chains.index(chain)
        return None

    def _up_to(self, chain, tops):
        """Bytes of the layers up to and including ``chain``: an image's listed total where ``chain`` is its top;
        otherwise from a history, scaled between the nearest known chains below and above so that the content the
        containerd store adds to the layers is shared in proportion to the layers' sizes (on the classic store the
        listed total is the sum of the history sizes, and this is exact)."""
        if chain in tops:
            return tops[chain][0]
        located = self._located(chain)
        if located is None:
            return None
        image_id, index = located
        chains, sizes = self.chains[image_id], self.histories[image_id]
        cumulative = []
        running = 0
        for size in sizes:
            running += size
            cumulative.append(running)
        below = -1
        for position in range(index - 1, -1, -1):
            if chains[position] in tops:
                below = position
                break
        base_total = tops[chains[below]][0] if below >= 0 else 0
        base_sum = cumulative[below] if below >= 0 else 0
        top_total = tops[chains[-1]][0] if chains[-1] in tops else self.totals[image_id]
        span = cumulative[-1] - base_sum
        if span <= 0:
            return base_total
        return base_total + (top_total - base_total) * (cumulative[index] - base_sum) // span

    def space(self, deleted, remaining, container_images, released=None):
        """Bytes the removal frees: the released layers, each once, and on the containerd store each deleted
        image's own content (config, manifest) beyond that of the image its top layer is counted with
        (``released`` as for ``missing``)."""
        _released, weights, tops = self._sets(deleted, remaining, container_images, released)
        total = sum(weight * self._sized(chain, tops) for chain, weight in weights.items())
        total += sum(self._own(image_id, tops) or 0 for image_id in set(deleted))
        return max(0, total)

    def _sized(self, chain, tops):
        """Bytes up to ``chain``: from the listed sizes and histories, else (no image that stays holds it)
        estimated (see ``_estimate``)."""
        value = self._up_to(chain, tops)
        return self._estimate(chain, tops) if value is None else value

    def _own(self, image_id, tops):
        """What the engine counts for a deleted image beyond the image its top layer is counted with: nothing on the
        classic store (the same layers, the same size); its own config and manifest on the containerd store. None
        for an image the table does not know."""
        chains = self.chains.get(image_id)
        if image_id not in self.totals or chains is None:
            return None
        return self.totals[image_id] - (tops[chains[-1]][0] if chains else 0)

    def _estimate(self, chain, tops):
        """Bytes up to ``chain`` without a history: between the nearest image top below it and the smallest image top
        above it (among the images that hold it), in proportion to the number of layers."""
        below_total, below_depth, above = 0, 0, None
        for image_id in self.holders().get(chain, ()):
            chains = self.chains[image_id]
            if image_id not in self.totals:
                continue
            index = chains.index(chain)
            for position in range(index - 1, -1, -1):
                if chains[position] in tops:
                    below_total, below_depth = tops[chains[position]][0], position + 1
                    break
            candidate = (tops[chains[-1]][0], len(chains))
            if above is None or candidate < above:
                above = candidate
            depth = index + 1
        if above is None:
            return 0
        top_total, top_depth = above
        if top_depth <= below_depth:
            return below_total
        return below_total + (top_total - below_total) * (depth - below_depth) // (top_depth - below_depth)

    def shares(self, chains, image_ids):
        """``space()`` as a sum, for callers that ask about many nested sets (``free_space``'s prefixes):
        ``({chain ID: the bytes that chain counts for when released}, {image ID: the bytes a deleted image adds
        beyond its top layer})``. ``space(d, r, c)`` equals the sum of the first over ``released(d, r, c)`` plus
        the second over ``d``: the telescoped sum counts, for each released layer, the bytes up to it minus the
        bytes up to the layer below it."""
        tops = self._tops()
        parents = self.parents()

        known = {None: 0}  # many released layers stand on the same few: each is sized once

        def up_to(chain):
            if chain not in known:
                known[chain] = self._sized(chain, tops)
            return known[chain]

        per_chain = {chain: up_to(chain) - up_to(parents.get(chain)) for chain in chains}
        per_image = {}
        for image_id in image_ids:
            own = self._own(image_id, tops)
            if own is not None:
                per_image[image_id] = own
        return per_chain, per_image
