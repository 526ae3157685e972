"""The cluster's PKI: root CA, node certificates, join tokens, mutual-TLS contexts."""

from orchestrator.security.ca import (
    MANAGER_OU,
    WORKER_OU,
    NodeCertificate,
    NodeIdentity,
    RootCA,
    generate_key_and_csr,
    identity_from_certificate,
)
from orchestrator.security.errors import CertificateError, InvalidJoinToken, SecurityError
from orchestrator.security.tls import MANAGER_SERVER_NAME, client_context, peer_identity, server_context
from orchestrator.security.tokens import (
    JoinToken,
    check_ca_digest,
    generate_join_token,
    generate_join_tokens,
    parse_join_token,
    role_for_token,
    rotate_join_tokens,
)

__all__ = [
    "MANAGER_OU",
    "MANAGER_SERVER_NAME",
    "WORKER_OU",
    "CertificateError",
    "InvalidJoinToken",
    "JoinToken",
    "NodeCertificate",
    "NodeIdentity",
    "RootCA",
    "SecurityError",
    "check_ca_digest",
    "client_context",
    "generate_join_token",
    "generate_join_tokens",
    "generate_key_and_csr",
    "identity_from_certificate",
    "parse_join_token",
    "peer_identity",
    "role_for_token",
    "rotate_join_tokens",
    "server_context",
]
