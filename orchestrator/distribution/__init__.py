"""A read-only OCI distribution (registry v2) endpoint on every manager's control API.

Nodes pull images that exist only on a manager (built there by `stack deploy`) through their own engine
(`pynode pull <manager>:2377/<name>`), over the cluster's mutual TLS: any node certificate of the cluster
may read. The content is this manager's engine's images, reached only through its API: an image is exported
once (`GET /images/get`) into a content-addressed cache under `<data-root>/swarm/distribution/`; a manifest
asked for by tag comes from the engine's current image for that tag (so a moved tag is seen), by digest from
the cache.
"""

from orchestrator.distribution.api import mount_registry

__all__ = ["mount_registry"]
