from __future__ import annotations

from pathlib import Path

import pytest

from compose.model import Project, config_hash
from compose.planner import (
    ContainerState,
    CreateContainer,
    CreateNetwork,
    CreateVolume,
    DownOptions,
    ObservedContainer,
    PlanError,
    Reason,
    RecreateContainer,
    RemoveContainer,
    RemoveNetwork,
    RemoveVolume,
    StartContainer,
    StopContainer,
    UpOptions,
    container_labels,
    group_by_level,
    observe_container,
    plan_down,
    plan_up,
)
from tests.compose.conftest import LoadFn, WriteFn

APP = """
services:
  db:
    image: postgres
    volumes: ["data:/var/lib/postgresql"]
  api:
    image: api
    depends_on:
      db: {condition: service_healthy, restart: true}
  web:
    image: web
    depends_on: [api]
  worker:
    image: worker
    depends_on:
      db: {condition: service_started}
volumes:
  data: {}
"""


@pytest.fixture
def app(write: WriteFn, load: LoadFn) -> Project:
    write("compose.yaml", APP)
    return load()


def running(project: Project, *, state: ContainerState = ContainerState.RUNNING) -> list[ObservedContainer]:
    """What the engine would report after a successful `up` of the project."""
    return [
        ObservedContainer(id=f"id-{name}", name=f"{project.name}-{name}-1", service=name, number=1,
                          config_hash=config_hash(svc), state=state)
        for name, svc in project.services.items()
    ]


def _summary(actions: list) -> list[tuple[str, int, str]]:
    return [(type(a).__name__, a.level, getattr(a, "name", "")) for a in actions]


def test_first_up_creates_everything_in_dependency_order(app: Project) -> None:
    actions = plan_up(app, observed=[])
    assert _summary(actions) == [
        ("CreateNetwork", 0, "myapp_default"),
        ("CreateVolume", 0, "myapp_data"),
        ("CreateContainer", 1, "myapp-db-1"),
        ("StartContainer", 1, "myapp-db-1"),
        ("CreateContainer", 2, "myapp-api-1"),
        ("StartContainer", 2, "myapp-api-1"),
        ("CreateContainer", 2, "myapp-worker-1"),
        ("StartContainer", 2, "myapp-worker-1"),
        ("CreateContainer", 3, "myapp-web-1"),
        ("StartContainer", 3, "myapp-web-1"),
    ]
    assert [len(level) for level in group_by_level(actions)] == [2, 2, 4, 2]


def test_second_up_with_nothing_changed_plans_nothing(app: Project) -> None:
    actions = plan_up(app, observed=running(app), existing_networks={"myapp_default"},
                      existing_volumes={"myapp_data"})
    assert actions == []


def test_stopped_containers_are_started_not_recreated(app: Project) -> None:
    actions = plan_up(app, observed=running(app, state=ContainerState.EXITED), existing_networks={"myapp_default"},
                      existing_volumes={"myapp_data"})
    assert {type(a) for a in actions} == {StartContainer}
    assert all(isinstance(a, StartContainer) and a.container_id == f"id-{a.service}" for a in actions)


def test_changed_service_is_recreated_with_restart_dependents(app: Project, write: WriteFn, load: LoadFn) -> None:
    observed = running(app)
    write("compose.yaml", APP.replace("image: postgres", "image: postgres:16"))
    changed = load()
    actions = plan_up(changed, observed=observed, existing_networks={"myapp_default"},
                      existing_volumes={"myapp_data"})
    recreated = [(a.service, a.reason) for a in actions if isinstance(a, RecreateContainer)]
    assert recreated == [("db", Reason.CONFIG_CHANGED), ("api", Reason.DEPENDENCY_RECREATED)]
    assert [a.service for a in actions if isinstance(a, StartContainer)] == ["db", "api"]


def test_only_the_changed_leaf_is_recreated(app: Project, write: WriteFn, load: LoadFn) -> None:
    observed = running(app)
    write("compose.yaml", APP.replace("image: web", "image: web:2"))
    actions = plan_up(load(), observed=observed, existing_networks={"myapp_default"},
                      existing_volumes={"myapp_data"})
    assert _summary(actions) == [("RecreateContainer", 3, "myapp-web-1"), ("StartContainer", 3, "myapp-web-1")]
    recreate = actions[0]
    assert isinstance(recreate, RecreateContainer) and recreate.old_id == "id-web"


def test_force_and_no_recreate(app: Project, write: WriteFn, load: LoadFn) -> None:
    observed = running(app)
    forced = plan_up(app, observed=observed, options=UpOptions(force_recreate=True))
    assert sum(isinstance(a, RecreateContainer) for a in forced) == 4
    write("compose.yaml", APP.replace("image: web", "image: web:2"))
    kept = plan_up(load(), observed=observed, options=UpOptions(no_recreate=True), existing_networks={"myapp_default"},
                   existing_volumes={"myapp_data"})
    assert kept == []


def test_selected_service_pulls_dependencies_unless_no_deps(app: Project) -> None:
    with_deps = plan_up(app, observed=[], services=["api"])
    assert [a.service for a in with_deps if isinstance(a, CreateContainer)] == ["db", "api"]
    alone = plan_up(app, observed=[], services=["api"], options=UpOptions(no_deps=True))
    assert [a.service for a in alone if isinstance(a, CreateContainer)] == ["api"]
    assert not any(isinstance(a, CreateVolume) for a in alone)


def test_unknown_service(app: Project) -> None:
    with pytest.raises(PlanError, match="no such service: nope"):
        plan_up(app, observed=[], services=["nope"])


def test_scale_up_and_down(app: Project) -> None:
    observed = running(app)
    up = plan_up(app, observed=observed, options=UpOptions(scale={"worker": 3}), services=["worker"],
                 existing_networks={"myapp_default"}, existing_volumes={"myapp_data"})
    assert [a.name for a in up if isinstance(a, CreateContainer)] == ["myapp-worker-2", "myapp-worker-3"]
    down = plan_up(app, observed=observed, options=UpOptions(scale={"worker": 0}), services=["worker"],
                   existing_networks={"myapp_default"}, existing_volumes={"myapp_data"})
    assert [(type(a), a.reason) for a in down if isinstance(a, RemoveContainer)] == [
        (RemoveContainer, Reason.SCALE_DOWN)]


def test_orphans_removed_only_when_asked(app: Project) -> None:
    orphan = ObservedContainer(id="old", name="myapp-legacy-1", service="legacy", number=1, config_hash="x",
                               state=ContainerState.RUNNING)
    observed = [*running(app), orphan]
    kept = plan_up(app, observed=observed, existing_networks={"myapp_default"}, existing_volumes={"myapp_data"})
    assert kept == []
    removed = plan_up(app, observed=observed, options=UpOptions(remove_orphans=True),
                      existing_networks={"myapp_default"}, existing_volumes={"myapp_data"})
    assert _summary(removed) == [("RemoveContainer", 0, "myapp-legacy-1")]


def test_labels(app: Project, project_dir: Path) -> None:
    labels = container_labels(app, app.services["api"], number=2)
    assert labels["com.docker.compose.project"] == "myapp"
    assert labels["com.docker.compose.service"] == "api"
    assert labels["com.docker.compose.container-number"] == "2"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.config-hash"] == config_hash(app.services["api"])
    assert labels["com.docker.compose.project.working_dir"] == str(project_dir)
    assert labels["com.docker.compose.project.config_files"] == str(project_dir / "compose.yaml")
    assert labels["com.docker.compose.depends_on"] == "db:service_healthy:true"
    assert labels["com.docker.compose.version"]


def test_container_name_option(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", "services:\n  web:\n    image: x\n    container_name: my-web\n    network_mode: host\n")
    actions = plan_up(load(), observed=[])
    assert _summary(actions) == [("CreateContainer", 1, "my-web"), ("StartContainer", 1, "my-web")]


def test_external_resources_are_not_created(write: WriteFn, load: LoadFn) -> None:
    write("compose.yaml", """
        services:
          web: {image: x, networks: [ext], volumes: ["shared:/s"]}
        networks: {ext: {external: true}}
        volumes: {shared: {external: true}}
    """)
    assert not any(isinstance(a, CreateNetwork | CreateVolume) for a in plan_up(load(), observed=[]))


def test_down_reverse_order(app: Project) -> None:
    observed = [c for c in running(app) if c.service != "db"]
    observed.append(ObservedContainer(id="id-db", name="myapp-db-1", service="db", number=1, config_hash="h",
                                      state=ContainerState.EXITED))
    actions = plan_down(app, observed=observed, options=DownOptions(remove_volumes=True))
    assert _summary(actions) == [
        ("StopContainer", 0, "myapp-web-1"),
        ("RemoveContainer", 0, "myapp-web-1"),
        ("StopContainer", 1, "myapp-api-1"),
        ("RemoveContainer", 1, "myapp-api-1"),
        ("StopContainer", 1, "myapp-worker-1"),
        ("RemoveContainer", 1, "myapp-worker-1"),
        ("RemoveContainer", 2, "myapp-db-1"),
        ("RemoveNetwork", 3, "myapp_default"),
        ("RemoveVolume", 3, "myapp_data"),
    ]
    assert not any(isinstance(a, RemoveVolume) for a in plan_down(app, observed=observed))
    assert isinstance(actions[0], StopContainer) and isinstance(actions[-2], RemoveNetwork)


def test_observe_container_reads_compose_labels(app: Project) -> None:
    labels = container_labels(app, app.services["db"], number=1)
    observed = observe_container(id="abc", name="/myapp-db-1", state="exited", labels=labels)
    assert observed == ObservedContainer(id="abc", name="myapp-db-1", service="db", number=1,
                                         config_hash=config_hash(app.services["db"]), state=ContainerState.EXITED)
    plan = plan_up(app, observed=[observed], services=["db"], existing_networks={"myapp_default"},
                   existing_volumes={"myapp_data"})
    assert _summary(plan) == [("StartContainer", 1, "myapp-db-1")]
