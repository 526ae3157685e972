"""`stack deploy` / `stack rm` on a manager (stacks/deploy.py), over a real store with the local proposer."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from orchestrator.manager.errors import BadRequest, Conflict, NotFound
from orchestrator.manager.manager import Manager
from orchestrator.model import (
    Cluster,
    Config,
    ContainerSpec,
    EndpointSpec,
    FileReference,
    Network,
    NetworkAttachmentConfig,
    NetworkSpec,
    Node,
    PortConfig,
    Secret,
    SecretSpec,
    Service,
    ServiceSpec,
    Stack,
    StackSpec,
    TaskSpec,
    UpdateState,
)
from orchestrator.security.sealing import content_digest
from orchestrator.stacks.deploy import deploy_stack, remove_stack
from orchestrator.stacks.model import NAMESPACE_LABEL, StackDeployment
from orchestrator.store import LocalProposer

INGRESS = Network(id="ing", spec=NetworkSpec(name="ingress", ingress=True, subnets=("10.0.0.0/24",)), vni=4096,
                  subnet="10.0.0.0/24", gateway="10.0.0.1")


@pytest.fixture
def manager() -> Manager:
    manager = Manager(LocalProposer(), secret="raft-secret")  # type: ignore[arg-type]
    for obj in (Cluster(id="c1"), Node(id="n1", addr="10.0.1.9"), INGRESS):
        manager.store.create(obj)
    return manager


def db_spec(*, image: str = "postgres:16") -> ServiceSpec:
    container = ContainerSpec(image=image, secrets=(FileReference(name="app_db_password", target="db_password"),))
    task = TaskSpec(container=container, networks=(NetworkAttachmentConfig(target="app_back", aliases=("db",)),))
    return ServiceSpec(name="app_db", task=task)


def web_spec() -> ServiceSpec:
    container = ContainerSpec(image="nginx", configs=(FileReference(name="app_site", target="/etc/site.conf"),))
    task = TaskSpec(container=container, networks=(NetworkAttachmentConfig(target="app_back", aliases=("web",)),
                                                   NetworkAttachmentConfig(target="app_front", aliases=("web",))))
    return ServiceSpec(name="app_web", task=task,
                       endpoint=EndpointSpec(ports=(PortConfig(target_port=80, published_port=8080),)))


def deployment(*, password: bytes = b"pw1", services: tuple[ServiceSpec, ...] | None = None) -> StackDeployment:
    return StackDeployment(
        spec=StackSpec(name="app"),
        services=(db_spec(), web_spec()) if services is None else services,
        networks=(NetworkSpec(name="app_back"), NetworkSpec(name="app_front")),
        secrets=(SecretSpec(name="app_db_password", data=password),),
        configs=(SecretSpec(name="app_site", data=b"server {}"),))


def by_name(manager: Manager, kind: type[Service] | type[Network] | type[Secret] | type[Config]
            ) -> dict[str, Service | Network | Secret | Config]:
    return {o.spec.name: o for o in manager.store.list(kind)}


def service(manager: Manager, name: str) -> Service:
    found = [s for s in manager.store.list(Service) if s.spec.name == name]
    assert len(found) == 1, name
    return found[0]


# --- deploy ------------------------------------------------------------------------------------------------
def test_deploy_creates_everything_in_one_transaction(manager: Manager) -> None:
    revision = manager.store.revision
    outcome = deploy_stack(manager, deployment())
    assert manager.store.revision == revision + 1
    assert outcome.actions == ["Creating network app_back", "Creating network app_front",
                               "Creating secret app_db_password", "Creating config app_site",
                               "Creating service app_db", "Creating service app_web"]
    assert outcome.stack is not None and outcome.stack.spec.name == "app"
    assert (outcome.stack.services, outcome.stack.networks, outcome.stack.secrets, outcome.stack.configs) == (
        ("app_db", "app_web"), ("app_back", "app_front"), ("app_db_password",), ("app_site",))
    for kind in (Service, Network, Secret, Config):
        for obj in by_name(manager, kind).values():
            if obj.spec.name != "ingress":
                assert obj.spec.labels[NAMESPACE_LABEL] == "app", obj


def test_deployed_networks_get_distinct_subnets_and_vnis_clear_of_nodes(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    nets = by_name(manager, Network)
    back, front = nets["app_back"], nets["app_front"]
    assert isinstance(back, Network) and isinstance(front, Network)
    assert {back.subnet, front.subnet} == {"10.0.2.0/24", "10.0.3.0/24"}  # 10.0.0 is ingress, 10.0.1 holds n1
    assert {back.vni, front.vni} == {4097, 4098}


def test_deployed_services_refer_to_ids_and_content_digests(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    nets, secrets, configs = by_name(manager, Network), by_name(manager, Secret), by_name(manager, Config)
    db, web = service(manager, "app_db"), service(manager, "app_web")
    assert db.spec.task.networks == (NetworkAttachmentConfig(target=nets["app_back"].id, aliases=("db",)),)
    (ref,) = db.spec.task.container.secrets
    assert (ref.id, ref.name, ref.digest) == (secrets["app_db_password"].id, "app_db_password", content_digest(b"pw1"))
    (conf,) = web.spec.task.container.configs
    assert (conf.id, conf.digest) == (configs["app_site"].id, content_digest(b"server {}"))


def test_deployed_secrets_are_stored_sealed(manager: Manager) -> None:
    deploy_stack(manager, deployment(password=b"hunter2-hunter2"))
    secret = by_name(manager, Secret)["app_db_password"]
    assert isinstance(secret, Secret)
    assert secret.spec.data == b"" and b"hunter2" not in secret.sealed
    assert manager.sealer is not None
    assert manager.sealer.unseal(secret.sealed, context=secret.id) == b"hunter2-hunter2"
    dump = json.dumps(manager.store.machine.dump())  # what a Raft snapshot holds
    assert "hunter2" not in dump and base64.b64encode(b"hunter2-hunter2").decode() not in dump


def test_a_second_identical_deploy_changes_nothing(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    before = {kind: {o.id: o.version for o in manager.store.list(kind)} for kind in (Service, Network, Secret, Config)}
    outcome = deploy_stack(manager, deployment())
    assert outcome.actions == []
    after = {kind: {o.id: o.version for o in manager.store.list(kind)} for kind in (Service, Network, Secret, Config)}
    assert after == before
    assert len(manager.store.list(Stack)) == 1


def test_a_changed_secret_is_resealed_and_only_its_services_roll(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    secret_before = by_name(manager, Secret)["app_db_password"]
    db_before, web_before = service(manager, "app_db"), service(manager, "app_web")
    outcome = deploy_stack(manager, deployment(password=b"pw2"))
    assert outcome.actions == ["Updating secret app_db_password (its services roll)",
                               f"Updating service app_db (id: {db_before.id})"]
    secret = by_name(manager, Secret)["app_db_password"]
    assert secret.id == secret_before.id and secret.created_at == secret_before.created_at
    assert isinstance(secret, Secret) and secret.digest == content_digest(b"pw2")
    assert manager.sealer is not None and manager.sealer.unseal(secret.sealed, context=secret.id) == b"pw2"
    db = service(manager, "app_db")
    assert db.spec.task.container.secrets[0].digest == content_digest(b"pw2")
    assert db.update_status is not None and db.update_status.state is UpdateState.UPDATING
    assert db.previous_spec == db_before.spec
    assert service(manager, "app_web") == web_before


def test_a_changed_service_is_updated_and_the_rest_kept(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    web_before = service(manager, "app_web")
    outcome = deploy_stack(manager, deployment(services=(db_spec(image="postgres:17"), web_spec())))
    assert outcome.actions == [f"Updating service app_db (id: {service(manager, 'app_db').id})"]
    assert service(manager, "app_db").spec.task.container.image == "postgres:17"
    assert service(manager, "app_web") == web_before


def test_services_left_out_of_the_file_stay_unless_pruned(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    kept = deploy_stack(manager, deployment(services=(db_spec(),)))
    assert kept.actions == [] and "app_web" in by_name(manager, Service)
    assert kept.stack is not None and kept.stack.services == ("app_db", "app_web")
    pruned = deploy_stack(manager, deployment(services=(db_spec(),)), prune=True)
    assert pruned.actions == ["Removing service app_web"]
    assert set(by_name(manager, Service)) == {"app_db"}
    assert pruned.stack is not None and pruned.stack.services == ("app_db",)


@pytest.mark.parametrize("clash", [
    Service(id="other-svc", spec=ServiceSpec(name="app_web", task=TaskSpec(container=ContainerSpec(image="x")))),
    Network(id="other-net", spec=NetworkSpec(name="app_front"), vni=5000, subnet="10.9.0.0/24", gateway="10.9.0.1"),
    Secret(id="other-sec", spec=SecretSpec(name="app_db_password")),
    Config(id="other-cfg", spec=SecretSpec(name="app_site")),
], ids=["service", "network", "secret", "config"])
def test_a_name_clash_with_an_object_outside_the_stack_is_refused_and_changes_nothing(
        manager: Manager, clash: Service | Network | Secret | Config) -> None:
    manager.store.create(clash)
    digest = manager.store.digest()
    with pytest.raises(Conflict, match=f"{clash.spec.name} exists and is not part of stack app"):
        deploy_stack(manager, deployment())
    assert manager.store.digest() == digest


def test_a_missing_external_network_is_refused(manager: Manager) -> None:
    with pytest.raises(NotFound, match="network shared is declared as external, but could not be found"):
        deploy_stack(manager, dataclasses.replace(deployment(), external_networks=("shared",)))
    assert manager.store.list(Stack) == []


def test_a_service_not_named_after_the_stack_is_refused(manager: Manager) -> None:
    stray = dataclasses.replace(db_spec(), name="db")
    with pytest.raises(BadRequest, match=r"service db is not named after stack app \(app_<service>\)"):
        deploy_stack(manager, deployment(services=(stray,)))


def test_an_invalid_stack_name_is_refused(manager: Manager) -> None:
    with pytest.raises(BadRequest, match="invalid stack name"):
        deploy_stack(manager, dataclasses.replace(deployment(), spec=StackSpec(name="-bad name")))


def test_a_service_referring_to_an_unknown_secret_is_refused_and_changes_nothing(manager: Manager) -> None:
    container = ContainerSpec(image="x", secrets=(FileReference(name="app_nope", target="nope"),))
    bad = ServiceSpec(name="app_bad", task=TaskSpec(container=container))
    digest = manager.store.digest()
    with pytest.raises(NotFound, match="secret app_nope not found"):
        deploy_stack(manager, deployment(services=(db_spec(), bad)))
    assert manager.store.digest() == digest


# --- remove ------------------------------------------------------------------------------------------------
def test_remove_stack_removes_everything_with_the_namespace_label(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    other = Service(id="other", spec=ServiceSpec(name="other", task=TaskSpec(container=ContainerSpec(image="x"))))
    manager.store.create(other)
    revision = manager.store.revision
    actions = remove_stack(manager, "app")
    assert manager.store.revision == revision + 1
    assert actions == ["Removing service app_db", "Removing service app_web", "Removing secret app_db_password",
                       "Removing config app_site", "Removing network app_back", "Removing network app_front"]
    assert set(by_name(manager, Service)) == {"other"}
    assert set(by_name(manager, Network)) == {"ingress"}
    assert manager.store.list(Secret) == [] and manager.store.list(Config) == [] and manager.store.list(Stack) == []
    with pytest.raises(NotFound, match="nothing found in stack: app"):
        remove_stack(manager, "app")


def test_remove_stack_refuses_while_another_service_uses_its_network(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    back = by_name(manager, Network)["app_back"]
    user = Service(id="user", spec=ServiceSpec(name="user", task=TaskSpec(
        container=ContainerSpec(image="x"), networks=(NetworkAttachmentConfig(target=back.id),))))
    manager.store.create(user)
    digest = manager.store.digest()
    with pytest.raises(Conflict, match="network app_back of stack app is in use by service user"):
        remove_stack(manager, "app")
    assert manager.store.digest() == digest


def test_a_removed_stack_deploys_again(manager: Manager) -> None:
    deploy_stack(manager, deployment())
    remove_stack(manager, "app")
    outcome = deploy_stack(manager, deployment())
    assert len(outcome.actions) == 6 and set(by_name(manager, Service)) == {"app_db", "app_web"}
