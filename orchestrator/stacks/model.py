"""What `POST /stacks` carries: a stack's whole desired content, as the compose file says it.

References inside a deployment are by name, as the compose file writes them after namespacing:
a service's `task.networks[].target` is a network's full name (`<stack>_default`, or an external
network's own name), its secrets/configs `FileReference.name` a secret's full name (`<stack>_db_password`,
or an external one's). The manager resolves names to ids when it applies the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.model import NetworkSpec, SecretSpec, ServiceSpec, StackSpec

NAMESPACE_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"


@dataclass(frozen=True, slots=True, kw_only=True)
class StackDeployment:
    spec: StackSpec
    services: tuple[ServiceSpec, ...] = ()
    networks: tuple[NetworkSpec, ...] = ()  # the stack's own (not external) networks, to create or keep
    secrets: tuple[SecretSpec, ...] = ()  # the stack's own secrets, with their content
    configs: tuple[SecretSpec, ...] = ()
    external_networks: tuple[str, ...] = ()  # names that must exist already
    external_secrets: tuple[str, ...] = ()
    external_configs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
