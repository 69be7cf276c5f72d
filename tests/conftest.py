"""Shared fixtures: private Docker engines of three kinds, a local registry, image builders.

Every test that asks for ``engine`` (or ``clean_engine``, ``world``, ``fresh_world``) runs once per engine kind:
``legacy``, ``classic`` and ``containerd``. Pick kinds with ``--engines legacy,containerd`` or ``JANITOR_ENGINES``. Engines start on first use
and stop at the end of the session; the host's own daemon is never used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.engines import KINDS, Engine, EngineUnavailable, engine_spec, selected_kinds  # noqa: E402
from tests.harness.images import ImageFactory  # noqa: E402
from tests.harness.registry import Registry  # noqa: E402
from tests.harness.world import WorldEngine  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(why: str):
    """A test's prerequisite is missing: a failure under CI (where `make test` installs everything), else a skip."""
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


def _role_default_layer_cache() -> Path:
    import yaml

    defaults = Path(__file__).resolve().parents[1] / "roles" / "image_cleanup" / "defaults" / "main.yml"
    return Path(yaml.safe_load(defaults.read_text())["image_cleanup_layer_cache"])


ROLE_LAYER_CACHE = _role_default_layer_cache()


def _stat(path: Path):
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


@pytest.fixture(autouse=True)
def _no_write_to_the_role_default_layer_cache():
    """A test that runs the role gives it a layer cache in its own directory: the role's default file on the
    machine running the tests is never written (it would make later runs warm, and it is not the test's)."""
    before = _stat(ROLE_LAYER_CACHE)
    yield
    after = _stat(ROLE_LAYER_CACHE)
    assert after == before, (f"the test wrote {ROLE_LAYER_CACHE}, the role's default layer cache: set "
                             f"image_cleanup_layer_cache to a path under the test's tmp_path")


def pytest_addoption(parser):
    parser.addoption("--engines", default=None,
                     help=f"comma-separated engine kinds to test on ({', '.join(KINDS)}; default all, "
                          "or $JANITOR_ENGINES)")


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: test runs against the private Docker engines")


def _kinds(config):
    return selected_kinds(config.getoption("--engines"))


def pytest_report_header(config):
    lines = []
    for kind in _kinds(config):
        spec = engine_spec(kind)
        why = spec.missing()
        if why:
            lines.append(f"engine {why}")
            continue
        env = dict(os.environ)
        if spec.path_prefix:
            env["PATH"] = os.pathsep.join([str(p) for p in spec.path_prefix] + [env.get("PATH", "")])
        version = subprocess.run([str(spec.dockerd), "--version"], capture_output=True, text=True, env=env, check=False).stdout
        store = "containerd image store" if kind == "containerd" else "overlay2 graph driver"
        lines.append(f"engine {kind}: {version.strip()} ({store})")
    return lines


def pytest_generate_tests(metafunc):
    if "engine_kind" in metafunc.fixturenames:
        metafunc.parametrize("engine_kind", _kinds(metafunc.config), scope="session")


class _EnginePool:
    """Engines started on first use, one per kind, stopped at session end."""

    def __init__(self, config):
        self.config = config
        self.engines: dict[str, Engine] = {}
        self.failed: dict[str, str] = {}

    def get(self, kind: str) -> Engine:
        if kind in self.failed:
            self._unavailable(self.failed[kind])
        if kind not in self.engines:
            try:
                engine = Engine(engine_spec(kind)).start()
            except EngineUnavailable as exc:
                self.failed[kind] = str(exc)
                self._unavailable(str(exc))
            self.engines[kind] = engine
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"[janitor] started {engine.describe()}")
        engine = self.engines[kind]
        if engine.process is not None and engine.process.poll() is not None:
            # a fault test killed it: start a fresh one
            engine.stop()
            del self.engines[kind]
            return self.get(kind)
        return engine

    @staticmethod
    def _unavailable(reason: str):
        missing(f"Docker engine unavailable: {reason}")

    def stop_all(self):
        for engine in self.engines.values():
            engine.stop()
        self.engines.clear()


@pytest.fixture(scope="session")
def engine_pool(request):
    pool = _EnginePool(request.config)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def engine(engine_pool, engine_kind) -> Engine:
    """The private engine of this kind, as the previous test left it."""
    return engine_pool.get(engine_kind)


@pytest.fixture
def clean_engine(engine) -> Engine:
    """The private engine of this kind with no containers and no images."""
    engine.reset()
    return engine


@pytest.fixture(scope="session")
def images_for(engine_pool):
    """``images_for(engine)``: the session's ImageFactory for an engine (its build cache lives for the session)."""
    factories: dict[str, ImageFactory] = {}

    def get(engine: Engine) -> ImageFactory:
        if factories.get(engine.kind) is None or factories[engine.kind].engine is not engine:
            factories[engine.kind] = ImageFactory(engine)
        return factories[engine.kind]

    return get


@pytest.fixture
def images(engine, images_for) -> ImageFactory:
    return images_for(engine)


@pytest.fixture(scope="session")
def registry():
    """A local docker-registry on 127.0.0.1 for real RepoDigests."""
    reg = Registry()
    try:
        reg.start()
    except RuntimeError as exc:
        missing(str(exc))
    yield reg
    reg.stop()


@pytest.fixture
def engine_args(engine) -> dict:
    """Module connection options for the engine."""
    return {"docker_host": engine.url}


@pytest.fixture(scope="session")
def world(engine_kind, registry):
    """The realistic image world (tests/harness/world.py) on an engine of its own, made once per session and kind.

    ``world.world`` describes it (references, IDs, dangling builds, intermediates, containers); ``world.engine`` is
    the engine as the previous test left it. Use ``fresh_world`` to start from the golden copy."""
    spec = engine_spec(engine_kind)
    why = spec.missing()
    if why:
        _EnginePool._unavailable(why)
    holder = WorldEngine(engine_kind)
    try:
        holder.start()
        holder.build(registry)
        yield holder
    finally:
        holder.close()


@pytest.fixture
def fresh_world(world):
    """The realistic world restored from its golden copy (a few seconds): destructive tests start from here."""
    world.restore()
    return world


@pytest.fixture
def inspects_asked(monkeypatch):
    """The names the unix-socket transport sends image inspects for, in order, from now on (the module in this
    process still gets every answer)."""
    from ansible_collections.janitor.docker.plugins.module_utils import _transport

    asked = []
    original = _transport._UnixCalls.inspect_image

    def inspect_image(self, image):
        asked.append(image)
        return original(self, image)

    monkeypatch.setattr(_transport._UnixCalls, "inspect_image", inspect_image)
    return asked
