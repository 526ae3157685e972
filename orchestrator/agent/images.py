"""A task's image on this node's engine: fetched from a manager's registry when the engine lacks it.

    ensure_image(client, "web:latest@sha256:...", managers=["10.0.0.2:2377"], paths=paths)
    pinned_reference(client, "web:latest")   # on a manager: "web:latest@sha256:<manifest digest>"

Every manager serves its own engine's images at `/v2/` on its control port (orchestrator.distribution).
The engine pulls `<manager>/<name>` itself, over https with this node's certificate: the cluster CA and the
node's pair are written where the engine looks for them (`<data-root>/certs.d/<manager>/ca.crt`,
`client.cert`, `client.key`, Docker's names); the manager's certificate carries its address as a SAN, so the
engine verifies it by IP. The pulled image is then named as the task asked and the registry-prefixed name
dropped. Layers the engine has are not transferred (the engine skips them by diff id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from node.client import EngineClient
from node.errors import InvalidArgument, NodeError, NotFound
from node.images.refs import DEFAULT_DOMAIN, DEFAULT_TAG, Reference, is_full_id, parse_reference
from orchestrator.daemon.localstate import SwarmPaths, write_atomic

log = logging.getLogger(__name__)


class ImageUnavailable(NotFound):
    """No manager could hand this node the image."""


def ensure_image(client: EngineClient, image: str, *, managers: Sequence[str], paths: SwarmPaths) -> None:
    """Return once the engine has `image` (by `name:tag`, or by its pinned digest when it has `@sha256:`).
    Otherwise pull it from the first manager ("addr:2377") that has it; ImageUnavailable names the image and
    what each manager answered."""
    if has_image(client, image):
        return
    ref = parse_reference(image)
    failures = []
    for manager in managers:
        remote = remote_reference(ref, manager)
        install_certificates(paths, manager)
        try:
            _pull(client, remote)
        except NodeError as exc:
            log.info("image %s: not from %s: %s", image, manager, exc)
            failures.append(f"{manager}: {exc}")
            continue
        _adopt(client, remote, ref)
        log.info("image %s: pulled from %s", image, manager)
        return
    tried = "; ".join(failures) if failures else "no manager is known"
    raise ImageUnavailable(f"image {image} is not on this node and no manager could provide it ({tried})")


def pinned_reference(client: EngineClient, image: str) -> str:
    """`name:tag@sha256:<manifest digest>` of `image` on this (manager's) engine: the digest its registry
    serves, so every node runs the same image and a rebuilt one changes the service spec."""
    if is_full_id(image):
        raise InvalidArgument(f"image {image}: pinning needs a name, not an image ID")
    ref = parse_reference(image)
    found = client.get(f"/images/{image}/json")
    digest = (found.get("Descriptor") or {}).get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise InvalidArgument(f"image {image}: the engine reports no manifest digest to pin it by")
    return f"{ref.familiar_name}:{ref.tag or DEFAULT_TAG}@{digest}"


def has_image(client: EngineClient, image: str) -> bool:
    try:
        client.get(f"/images/{image}/json")
    except NotFound:
        return False
    return True


def remote_reference(ref: Reference, manager: str) -> Reference:
    """`web:latest` -> `10.0.0.2:2377/web:latest`; a digest, when there is one, decides what is pulled."""
    path = ref.familiar_name if ref.domain == DEFAULT_DOMAIN else ref.name
    suffix = f"@{ref.digest}" if ref.digest else f":{ref.tag or DEFAULT_TAG}"
    try:
        return parse_reference(f"{manager}/{path}{suffix}")
    except InvalidArgument as exc:
        raise InvalidArgument(f"image {ref.familiar}: cannot be named on a manager's registry: {exc}") from None


def install_certificates(paths: SwarmPaths, manager: str) -> Path:
    """This node's certificate, key and the cluster CA where the engine looks for `manager`'s (certs.d)."""
    directory = paths.data_root / "certs.d" / manager
    for name, source, mode in (("ca.crt", paths.ca_cert, 0o644), ("client.cert", paths.node_cert, 0o644),
                               ("client.key", paths.node_key, 0o600)):
        data = source.read_bytes()
        target = directory / name
        if not target.is_file() or target.read_bytes() != data:  # certificates are renewed: keep them current
            write_atomic(target, data, mode=mode)
    return directory


def _pull(client: EngineClient, remote: Reference) -> None:
    params = {"fromImage": remote.name, "tag": remote.digest or remote.tag or DEFAULT_TAG}
    for message in client.stream_json("POST", "/images/create", params=params):
        if message.get("id") and "progressDetail" in message and not message["progressDetail"]:
            log.debug("pull %s: %s: %s", remote.familiar, message["id"], message.get("status", ""))


def _adopt(client: EngineClient, remote: Reference, ref: Reference) -> None:
    """Name the pulled image as the task asked (`name:tag`, and `name@digest` when pinned), then drop the
    registry-prefixed name (an image tagged meanwhile by a concurrent pull is left as it is)."""
    source = remote.familiar
    if ref.tag or not ref.digest:
        client.post(f"/images/{source}/tag", params={"repo": ref.familiar_name, "tag": ref.tag or DEFAULT_TAG})
    if ref.digest:
        client.post(f"/images/{source}/tag", params={"repo": f"{ref.familiar_name}@{ref.digest}"})
    try:
        client.delete(f"/images/{source}")
    except NotFound:
        pass
