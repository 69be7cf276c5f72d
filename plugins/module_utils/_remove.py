# Copyright: janitor.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One run of ``image_remove``: options -> ``Selection`` (validated before connecting) -> ``_snapshot.read`` ->
``resolve`` -> (``free_space`` / ``unused_for``: the least-recently-used choice) -> ``_planner`` -> check mode:
``_result.build(plan)``; real run: ``_executor.apply`` -> the engine's result -> the last-used state file -> the
result as returned (``msg``, ``free_space``, ``diff``). Beside it from the snapshot on, the images' layers are read
(``_layer_reader.LayerReader``), those the ``layer_cache`` file knows excepted, and the file is written at the end.

The module builds the ``AnsibleModule`` and turns ``_errors`` into ``fail_json``; this file never sees it: it gets
the parameters, check mode, diff mode and a ``warn(message)`` callable.

``_pressure``, ``_last_used`` and ``_disk`` are imported where a run first needs them (``choose``, ``PressureRun``):
only runs with ``free_space``, ``unused_for`` or ``last_used_state`` do, and every other run is spared compiling and
loading them (Ansible sends a module's code as source, compiled again on each run).
"""

from __future__ import annotations

import re
import time

from ansible_collections.janitor.docker.plugins.module_utils import (
    _errors,
    _executor,
    _layer_cache,
    _layer_reader,
    _layers,
    _planner,
    _pressure_options,
    _references,
    _result,
    _selection,
    _snapshot,
    _statefile,
    _transport,
)


PLATFORM_RE = re.compile(r"[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_.]+)?")


class ImageRemover:
    """Snapshot -> references -> plan -> (check mode: the plan's result | real run: the executor's result)."""

    def __init__(self, params, *, check_mode, diff, warn):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.warn = warn
        self.selection = None
        self.now = time.time()
        self.pressure = _pressure_options.Pressure()
        self.state = None  # what a run with free_space, unused_for or last_used_state carries (PressureRun)
        self.platforms = ()
        self.cache = None  # the layer_cache file's entries (_layer_cache.LayerCache)
        self._table = None

    def validate(self):
        """Every error in the options, before connecting: the selection is built once, here."""
        params = self.params
        if params["parallel"] < 1 or params["parallel"] > 64:
            raise _errors.JanitorError(f"parallel={params['parallel']} is not valid: give a number from 1 to 64")
        self.pressure = _pressure_options.Pressure.from_params(params, self.now)
        _statefile.checked_path("layer_cache", params.get("layer_cache"), "/var/cache/janitor-docker/layers.json")
        self.selection = _selection.Selection(self.selection_params(), now=self.now)
        self.platforms = self.parse_platforms()

    def parse_platforms(self):
        """``platforms`` as platform keys, checked before connecting (the form, and that only images entries go)."""
        params = self.params
        values = params.get("platforms") or []
        if not values:
            return ()
        if not params["images"] or params.get("filters") or params.get("all") or self.pressure.active:
            raise _errors.JanitorError("platforms removes platform variants of the images named in images; it cannot "
                                       "be combined with filters, all, free_space or unused_for, and needs images")
        keys = []
        for value in values:
            if not isinstance(value, str) or not PLATFORM_RE.fullmatch(value):
                raise _errors.JanitorError(f"platforms: {value!r} is not a platform; the valid form is "
                                           f"os/architecture or os/architecture/variant, such as linux/amd64 or "
                                           f"linux/arm/v7")
            key = _planner.platform_key(*value.split("/"))
            if key not in keys:
                keys.append(key)
        return tuple(keys)

    def platform_data(self, client, snapshot, selected):
        """The engine's inspect of each image named (with its manifests on the containerd store); API 1.50 first."""
        version = str(snapshot.api_version or client.api_version or "0")
        if _transport.api_version_tuple(version) < _transport.api_version_tuple(_planner.PLATFORMS_API):
            raise _errors.JanitorError(
                f"platforms needs Docker API {_planner.PLATFORMS_API} (Docker 28.2) or newer; the Docker daemon at "
                f"{client.host} speaks API {version} (Docker {snapshot.engine_version or '?'}). Nothing was removed")
        return {image_id: client.image_manifests(image_id)
                for image_id in dict.fromkeys(r.image_id for r in selected.requests)}

    def selection_params(self):
        """The selection options; with ``free_space`` or ``unused_for`` and neither ``filters`` nor ``all``, every
        image is a candidate (``all``)."""
        params = self.params
        if self.pressure.active and not params.get("filters") and not params.get("all"):
            return dict(params, all=True)
        return params

    def policy(self):
        """``containers`` not given: fail for ``images`` entries (like ``docker rmi``), skip for images that only
        ``filters`` or ``all`` selected (like ``docker image prune``); given, it applies to both."""
        given = self.params["containers"]
        return _planner.Policy(force=self.params["force"], prune=self.params["prune"],
                               containers=given or "fail", rule_containers=given or "skip")

    def layer_reader(self, client, snapshot):
        """Every image's layers, for the released layers and the space the run frees (check mode and real run
        alike). The inspects start at once and run beside planning; the real run waits for them before its first
        removal. The images the ``layer_cache`` knows are not inspected, except with ``free_space`` or
        ``unused_for``: those need each image's last tag time, which only its inspect gives."""
        if not snapshot.images:
            return None
        known = histories = None
        if self.cache is not None:
            histories = self.cache.histories(snapshot.images)
            if not self.pressure.active:
                known = self.cache.layers(snapshot.images)
        return _layer_reader.LayerReader(client, [image.id for image in snapshot.images], self.params["parallel"],
                                         known=known, known_histories=histories,
                                         names=_references.inspect_names(snapshot)).start()

    def save_cache(self, snapshot, layer_reader):
        """Write the ``layer_cache`` with what this run knows of the listed images (check mode too: it is the
        module's cache, not the engine's state)."""
        if self.cache is None or layer_reader is None:
            return
        layers = dict(layer_reader.known)
        layers.update(layer_reader.read())
        warning = self.cache.save(snapshot.images, layers, layer_reader.histories_read, self.now)
        if warning:
            self.warn(warning)

    def choose(self, client, snapshot, selected, layer_reader):
        """``free_space`` / ``unused_for``: the selection's images (no image in use) in least-recently-used order,
        the shortest prefix that brings the measure to ``low`` as the planner and the layer accounting (the one
        ``space_reclaimed`` uses) predict it; ``selected`` then requests those. ``self.state`` keeps what the
        result and the state file need."""
        from ansible_collections.janitor.docker.plugins.module_utils import (  # see the module docstring
            _disk,
            _last_used,
            _pressure,
        )

        pressure = self.pressure
        given = pressure.describe()
        offered, kept = _pressure.candidates(snapshot, selected.requests, selected.kept, given)
        run = PressureRun(self.params["last_used_state"])
        # the image inspects the layers come from give the last tag times too: each image is inspected once
        tag_times = _last_used.tag_times(layer_reader.inspections() if layer_reader is not None else {})
        # the containers' images are never candidates: their uses matter only to the state file
        run.uses = run.container_uses(client, snapshot, self.now) if run.path else {}
        last_used = _last_used.last_used(snapshot, tag_times, run.uses, run.remembered)
        rules = _planner.rules_for(snapshot.store)
        rule = _pressure.RULE_FREE_SPACE if pressure.free_space else _pressure.RULE_UNUSED_FOR
        measure = freed = space = None
        if pressure.free_space is not None:
            measure = _disk.read_measure(client, pressure.free_space.measure, client.info(), snapshot.store)
            read = layer_reader.histories if layer_reader is not None else dict.fromkeys
            space = _pressure.LayerSpace(snapshot, self.layer_table(snapshot, layer_reader), read)
            freed = _pressure.PrefixFreed(snapshot, offered, self.policy(), rules, space, rule, given)
        run.choice = _pressure.choose_checked(snapshot, pressure, offered, last_used, rules, measure, freed)
        if space is not None:
            self._table = space.table  # with the histories read for the choice: the plan's accounting reuses them
        selected.requests = _pressure.requests_for(snapshot, run.choice.chosen, rule, given)
        selected.kept = kept + run.choice.kept
        self.state = run

    def layer_table(self, snapshot, layer_reader):
        """The layer table of every image (its layers read once), with the listed sizes."""
        if self._table is None:
            layers = layer_reader.layers() if layer_reader is not None else {}
            self._table = _layers.LayerTable.from_diff_ids(layers, {image.id: image.size for image in snapshot.images})
        return self._table

    def plan(self, snapshot, selected, layer_reader, platform_data=None):
        """The plan (made once), and when it deletes something, the function ``_result.build`` calls for the layer
        table of the run's ``accounting_sets`` (see ``accounting``)."""
        rules = _planner.rules_for(snapshot.store)
        if self.platforms:
            plan = _planner.plan_platforms(snapshot, selected.requests, self.platforms, platform_data, self.policy(),
                                           rules, not_found=selected.not_found)
        elif self.state is not None and self.state.choice is not None and self.state.choice.plan is not None:
            # free_space made this plan when it checked its choice (the same requests, policy and rules)
            plan = _planner.planned(self.state.choice.plan, not_found=selected.not_found, protected=selected.protected)
        else:
            plan = _planner.plan(snapshot, selected.requests, self.policy(), rules, not_found=selected.not_found,
                                 protected=selected.protected)
        layers = None
        if layer_reader is not None and any(step.deleted for step in plan.steps):
            layers = self.accounting(snapshot, layer_reader)
        return plan, layers

    def accounting(self, snapshot, layer_reader):
        """``sets -> LayerTable``: the layers read, the listed sizes, and the history of the few images that stay
        whose per-layer sizes the space needs (read after the removals in the real run: they stay)."""
        def table(sets):
            try:
                layers = self.layer_table(snapshot, layer_reader)
                wanted = layers.missing(*sets)
                if wanted:
                    layers = layers.with_histories(layer_reader.histories(wanted))
            except _errors.JanitorError as exc:
                if self.check_mode:
                    raise
                # the removals are done: report them, with the space counted from the Parent links
                self.warn(f"reading the images' layers failed, so space_reclaimed counts each deleted image's "
                          f"size beyond its parent's and deleted_layers may be incomplete: {exc.message}")
                return None
            return layers
        return table

    def run(self):
        self.validate()
        if self.params.get("layer_cache"):
            self.cache = _layer_cache.LayerCache.load(self.params["layer_cache"])
            if self.cache.warning:
                self.warn(self.cache.warning)
        client = _transport.connect(self.params)
        try:
            try:
                snapshot = _snapshot.read(client)
            except _errors.JanitorError:
                raise
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _errors.JanitorError(f"reading the images and containers: the answer of the Docker daemon at "
                                           f"{client.host} is not what a Docker daemon sends ({type(exc).__name__}: "
                                           f"{exc})") from exc
            layer_reader = self.layer_reader(client, snapshot)
            try:
                selected = self.selection.resolve(snapshot)
                for warning in selected.warnings:
                    self.warn(warning)
                if self.pressure.active:
                    self.choose(client, snapshot, selected, layer_reader)
                elif self.params["last_used_state"]:
                    self.state = PressureRun(self.params["last_used_state"])
                    self.state.uses = self.state.container_uses(client, snapshot, self.now)
                platform_data = self.platform_data(client, snapshot, selected) if self.platforms else None
                plan, layers = self.plan(snapshot, selected, layer_reader, platform_data)
                if self.check_mode:
                    predicted = _result.build(plan, layers=layers)
                    return self.finish(_selection.annotate(predicted, plan, selected.kept), summary=True)
                predicted = _result.build(plan)  # what the answers are compared with: references and images
                if layers is not None:
                    layer_reader.layers()  # every image's layers are read before the first removal
                result = _executor.apply(client, plan, parallel=self.params["parallel"], layers=layers,
                                         warn=self.warn)
            finally:
                if layer_reader is not None:
                    layer_reader.cancel()
                    self.save_cache(snapshot, layer_reader)
            differences = _executor.differences(predicted, result, layers_predicted=False)
            if differences:
                self.warn(f"the engine's answers differ from the plan (another client changed images during "
                          f"the run, or the model missed a case): {differences}")
            if self.state is not None and self.state.path:
                warning = self.state.save(snapshot, self.now, result["deleted"])
                if warning:
                    self.warn(warning)
            return self.finish(_selection.annotate(result, plan, selected.kept), summary=True)
        finally:
            client.close()

    def finish(self, result, summary=False):
        """The result as returned: ``free_space`` and each removed image's ``last_used`` with the pressure options,
        ``diff`` only in diff mode, as Ansible shows it only then; with ``summary``, the one-line ``msg`` (a failed
        run's ``msg`` is its error). Check mode and the real run alike: ``used_after`` is the measure before minus
        ``space_reclaimed``, the layer accounting of the images deleted."""
        run = self.state
        if run is not None:
            for warning in run.warnings():
                self.warn(warning)
            if run.choice is not None:
                for entry in result.get("images") or ():
                    if entry["id"] in run.choice.last_used:
                        entry["last_used"] = run.choice.last_used[entry["id"]]
                if run.choice.free_space is not None:
                    result["free_space"] = run.free_space(result.get("space_reclaimed") or 0)
            self.state = None  # warnings once, even when a failure finishes the result again
        if summary:
            result["msg"] = _result.summary(result)
        if not self.diff:
            result.pop("diff", None)
        return result


class PressureRun:
    """What one run with the pressure options carries from planning to the result: the state file's content, the
    containers' uses, the choice, and the warnings."""

    def __init__(self, path):
        self.path = path or ""
        from ansible_collections.janitor.docker.plugins.module_utils import _last_used  # see the module docstring

        self.remembered, warning = _last_used.load_state(self.path) if self.path else ({}, None)
        self._warnings = [warning] if warning else []
        self.uses = {}
        self.choice = None

    def container_uses(self, client, snapshot, now):
        """The containers' uses of their images, for the state file (``_last_used.container_uses``)."""
        from ansible_collections.janitor.docker.plugins.module_utils import _last_used  # see the module docstring

        return _last_used.container_uses(client, snapshot, now)

    def save(self, snapshot, now, deleted):
        """Write the state file for the run's end; a warning if it could not be written, else None."""
        from ansible_collections.janitor.docker.plugins.module_utils import _last_used  # see the module docstring

        return _last_used.save_state(self.path, _last_used.next_state(snapshot, self.remembered, self.uses, now,
                                                                      deleted=deleted))

    def warnings(self):
        return self._warnings + (list(self.choice.warnings) if self.choice is not None else [])

    def free_space(self, reclaimed):
        """The result's ``free_space`` for ``reclaimed`` bytes (predicted in check mode, answered in a real run)."""
        out = dict(self.choice.free_space)
        out["used_after"] = out["used_before"] - reclaimed
        out["target_met"] = out["used_before"] < out["high"] or out["used_after"] <= out["low"]
        return out
