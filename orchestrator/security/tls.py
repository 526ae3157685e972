"""`ssl.SSLContext`s for the cluster's mutual TLS, and the peer's identity from its certificate."""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

from orchestrator.security.ca import MANAGER_OU, NodeIdentity, identity_from_certificate
from orchestrator.security.errors import CertificateError

MANAGER_SERVER_NAME = MANAGER_OU  # every manager certificate carries it as a DNS name


def server_context(
    *, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, require_client_cert: bool = True
) -> ssl.SSLContext:
    """A manager's listener: presents its node certificate, verifies peers against the cluster CA.

    `require_client_cert=False` is for the join endpoint only, where nodes have no certificate yet.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ca_pem.decode())
    _load_chain(context, cert_pem, key_pem)
    return context


def client_context(*, ca_pem: bytes, cert_pem: bytes | None = None, key_pem: bytes | None = None) -> ssl.SSLContext:
    """A node dialling a manager: connect with `server_hostname=MANAGER_SERVER_NAME`.

    Without a certificate (before joining) it still verifies the manager against `ca_pem`.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca_pem.decode())
    if cert_pem is not None and key_pem is not None:
        _load_chain(context, cert_pem, key_pem)
    return context


def peer_identity(connection: ssl.SSLSocket | ssl.SSLObject) -> NodeIdentity:
    """Who is at the other end (already verified by the handshake): node id, role, cluster."""
    der = connection.getpeercert(binary_form=True)
    if not der:
        raise CertificateError("the peer presented no certificate")
    return identity_from_certificate(der)


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """`load_cert_chain` reads files only: write them to a private temporary directory, briefly."""
    with tempfile.TemporaryDirectory(prefix="pyswarm-tls-") as tmp:
        os.chmod(tmp, 0o700)
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise CertificateError(f"certificate and key do not load: {exc}") from exc
