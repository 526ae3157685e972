"""The registry's errors, each with the distribution spec's code and HTTP status (api.py answers them as
`{"errors": [{"code", "message", "detail"}]}`)."""

from __future__ import annotations

from orchestrator.errors import OrchestratorError


class RegistryError(OrchestratorError):
    code = "UNKNOWN"
    status = 500


class NameInvalid(RegistryError):
    code = "NAME_INVALID"
    status = 400


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"
    status = 400


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"
    status = 400


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"
    status = 404


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"
    status = 404


class Denied(RegistryError):
    code = "DENIED"
    status = 403


class Unavailable(RegistryError):
    code = "UNAVAILABLE"
    status = 503
