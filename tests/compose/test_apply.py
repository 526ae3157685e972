"""The applier over the in-memory engine: order, conditions, parallelism, failures, down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from compose import apply as apply_module
from compose.apply import Applier, ApplyError, ApplyOptions, DependencyFailed, observe_project, unwrap_group_error
from compose.model import DependencyCondition, Project
from compose.planner import DownOptions, UpOptions, plan_down, plan_up, select_with_dependencies
from tests.compose.conftest import LoadFn, WriteFn
from tests.compose.fakes import FakeBackend

APP = """
services:
  db:
    image: busybox
    healthcheck: {test: ["CMD", "true"]}
    volumes: ["data:/data"]
  migrate:
    image: busybox
    depends_on: {db: {condition: service_healthy}}
  api:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    networks: [back, front]
  web:
    image: busybox
    depends_on: [api]
    networks: [front]
  cache:
    image: busybox
networks:
  back: {}
  front: {}
volumes:
  data: {}
"""


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply_module, "POLL_INTERVAL", 0.001)


@pytest.fixture
def app(write: WriteFn, load: LoadFn) -> Project:
    write("compose.yaml", APP)
    return load()


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def update(self, kind: str, name: str, status: str, *, done: bool = False, error: bool = False) -> None:
        self.lines.append((kind, name, status))


def up(project: Project, backend: FakeBackend, *, services: list[str] | None = None,
       options: UpOptions | None = None, progress: Recorder | None = None, tmp: Path | None = None) -> None:
    options = options or UpOptions()

    async def go() -> None:
        observed = await observe_project(backend, project.name)
        actions = plan_up(project, observed=observed, options=options, services=services,
                          existing_networks=set(backend.networks), existing_volumes=set(backend.volumes))
        selected = select_with_dependencies(project, services, no_deps=options.no_deps)
        applier = Applier(project, backend, progress=progress,
                          options=ApplyOptions(state_dir=tmp or Path("/nonexistent")))
        await applier.up(actions, services=selected, observed=observed)

    try:
        asyncio.run(go())
    except BaseExceptionGroup as group:
        raise unwrap_group_error(group) from None


def test_up_creates_resources_then_services_after_their_conditions(app: Project) -> None:
    backend = FakeBackend(health={"db": ["starting", "starting", "healthy"]}, exits={"migrate": 0})
    progress = Recorder()
    up(app, backend, progress=progress)
    assert set(backend.networks) == {"myapp_back", "myapp_front", "myapp_default"}
    assert set(backend.volumes) == {"myapp_data"}
    first_container = min(backend.index("create", n) for n in ("myapp-db-1", "myapp-cache-1"))
    assert all(backend.index(kind, name) < first_container for kind, name in backend.calls
               if kind in ("create_network", "create_volume"))
    assert backend.index("start", "myapp-db-1") < backend.index("create", "myapp-migrate-1")
    assert backend.index("start", "myapp-migrate-1") < backend.index("create", "myapp-api-1")
    assert backend.index("start", "myapp-api-1") < backend.index("create", "myapp-web-1")
    assert ("Container", "myapp-db-1", "Waiting") in progress.lines
    assert ("Container", "myapp-db-1", "Healthy") in progress.lines
    api = next(c for c in backend.containers.values() if c.name == "myapp-api-1")
    assert api.body["HostConfig"]["NetworkMode"] == "myapp_back"
    assert api.networks == ["myapp_front"]  # the second network is connected after create


def test_independent_services_go_in_parallel(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n" + "".join(f"  s{i}:\n    image: busybox\n" for i in range(10)))
    project = load()
    backend = FakeBackend(delay=0.01)
    up(project, backend)
    assert len(backend.containers) == 10
    assert backend.max_in_flight >= 5


def test_scale_runs_a_services_containers_in_parallel(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: busybox\n")
    project = load()
    backend = FakeBackend(delay=0.01)
    up(project, backend, options=UpOptions(scale={"web": 6}))
    assert sorted(c.name for c in backend.containers.values()) == [f"myapp-web-{i}" for i in range(1, 7)]
    assert backend.max_in_flight >= 3


def test_failed_one_shot_dependency_stops_up_before_its_dependents(app: Project) -> None:
    backend = FakeBackend(health={"db": ["healthy"]}, exits={"migrate": 1})
    with pytest.raises(DependencyFailed, match="service migrate didn't complete successfully: exit 1"):
        up(app, backend)
    names = {c.name for c in backend.containers.values()}
    assert "myapp-api-1" not in names and "myapp-web-1" not in names
    assert "myapp-migrate-1" in names  # left for inspection; down removes it


def test_unhealthy_dependency_is_named(app: Project) -> None:
    backend = FakeBackend(health={"db": ["starting", "unhealthy"]}, exits={"migrate": 0})
    with pytest.raises(DependencyFailed, match="container myapp-db-1 is unhealthy"):
        up(app, backend, services=["api"])


def test_optional_dependency_failure_does_not_stop_up(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          job: {image: busybox}
          app:
            image: busybox
            depends_on:
              job: {condition: service_completed_successfully, required: false}
        """)
    backend = FakeBackend(exits={"job": 4})
    up(load(), backend)
    assert {c.name: c.state for c in backend.containers.values()} == {"myapp-job-1": "exited",
                                                                       "myapp-app-1": "running"}


def test_missing_image_fails_before_anything_is_created(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  a:\n    image: busybox\n  b:\n    image: ghost:1\n    volumes: [v:/v]\n"
                          "volumes:\n  v: {}\n")
    backend = FakeBackend()
    with pytest.raises(ApplyError, match="image ghost:1 not found locally"):
        up(load(), backend)
    assert backend.calls == []


def test_build_service_without_builder_is_a_clear_error(write: WriteFn, load: LoadFn, project_dir: Path) -> None:
    (project_dir / "app").mkdir()
    write("compose.yaml", "services:\n  app:\n    build: ./app\n")
    backend = FakeBackend()
    with pytest.raises(ApplyError, match="image myapp-app not found, and building it is not yet supported"):
        up(load(), backend)


def test_second_up_touches_only_the_changed_service(app: Project, write: WriteFn, load: LoadFn) -> None:
    backend = FakeBackend(health={"db": ["healthy"]}, exits={"migrate": 0})
    up(app, backend)
    before = {c.name: c.id for c in backend.containers.values()}
    backend.calls.clear()
    write("compose.yaml", APP.replace("  cache:\n    image: busybox\n",
                                      "  cache:\n    image: busybox\n    environment: {SIZE: '2'}\n"))
    progress = Recorder()
    up(load(), backend, progress=progress)
    after = {c.name: c.id for c in backend.containers.values()}
    assert {n for n in before if before[n] != after[n]} == {"myapp-cache-1"}
    assert ("stop", "myapp-cache-1") in backend.calls and ("remove", "myapp-cache-1") in backend.calls
    assert ("Container", "myapp-web-1", "Running") in progress.lines
    # migrate had exited: up runs it again, as compose does
    assert ("start", "myapp-migrate-1") in backend.calls


def test_content_secrets_are_written_and_bound(write: WriteFn, load: LoadFn, tmp_path: Path) -> None:
    write("compose.yaml", """
        services:
          app:
            image: busybox
            secrets: [token]
            configs: [{source: conf, target: /etc/app.conf}]
        secrets:
          token: {environment: TOKEN}
        configs:
          conf: {content: "debug=1"}
        """)
    project = load()
    backend = FakeBackend()

    async def go() -> None:
        actions = plan_up(project, observed=[])
        applier = Applier(project, backend, options=ApplyOptions(state_dir=tmp_path, environ={"TOKEN": "s3cret"}))
        await applier.up(actions, services=["app"])
        assert (tmp_path / "myapp/secrets/token").read_text() == "s3cret"
        assert (tmp_path / "myapp/configs/conf").read_text() == "debug=1"
        binds = next(iter(backend.containers.values())).body["HostConfig"]["Binds"]
        assert binds == [f"{tmp_path}/myapp/secrets/token:/run/secrets/token:ro",
                         f"{tmp_path}/myapp/configs/conf:/etc/app.conf:ro"]
        await applier.run_levels(plan_down(project, observed=await observe_project(backend, "myapp")))
        applier.remove_state()

    asyncio.run(go())
    assert not (tmp_path / "myapp").exists()


def test_down_goes_dependents_first_and_removes_resources_last(app: Project) -> None:
    backend = FakeBackend(health={"db": ["healthy"]}, exits={"migrate": 0})
    up(app, backend)

    async def go() -> None:
        observed = await observe_project(backend, app.name)
        actions = plan_down(app, observed=observed, options=DownOptions(remove_volumes=True),
                            existing_networks=set(backend.networks), existing_volumes=set(backend.volumes))
        await Applier(app, backend).run_levels(actions)

    backend.calls.clear()
    asyncio.run(go())
    assert backend.containers == {} and backend.networks == {} and backend.volumes == {}
    assert backend.index("remove", "myapp-web-1") < backend.index("stop", "myapp-api-1")
    assert backend.index("remove", "myapp-api-1") < backend.index("stop", "myapp-db-1")
    assert backend.index("remove", "myapp-db-1") < backend.index("remove_network", "myapp_default")


def test_create_only_does_not_wait_for_conditions(app: Project) -> None:
    backend = FakeBackend(health={"db": ["starting"]})

    async def go() -> None:
        actions = [a for a in plan_up(app, observed=[]) if type(a).__name__ != "StartContainer"]
        applier = Applier(app, backend)
        await asyncio.wait_for(applier.up(actions, services=sorted(app.services), wait_conditions=False), 5)

    asyncio.run(go())
    assert {c.state for c in backend.containers.values()} == {"created"}
    assert len(backend.containers) == 5


def test_a_healthcheck_not_yet_reported_is_pending(app: Project) -> None:
    applier = Applier(app, FakeBackend())
    info = {"Name": "/myapp-db-1", "State": {"Status": "running"},
            "Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}
    assert applier._meets(info, DependencyCondition.HEALTHY, "db") is False
    with pytest.raises(DependencyFailed, match="no healthcheck configured"):
        applier._meets({**info, "Config": {}}, DependencyCondition.HEALTHY, "db")
