from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from orchestrator.model import JoinTokens, NodeRole
from orchestrator.security import (
    MANAGER_SERVER_NAME,
    CertificateError,
    InvalidJoinToken,
    NodeCertificate,
    NodeIdentity,
    RootCA,
    check_ca_digest,
    client_context,
    generate_join_tokens,
    generate_key_and_csr,
    identity_from_certificate,
    parse_join_token,
    peer_identity,
    role_for_token,
    rotate_join_tokens,
    server_context,
)


@pytest.fixture(scope="module")
def ca() -> RootCA:
    return RootCA.create()


@pytest.fixture(scope="module")
def manager_cert(ca: RootCA) -> NodeCertificate:
    return ca.issue(node_id="mgr1", role=NodeRole.MANAGER, cluster_id="c1", addresses=["127.0.0.1"])


def test_root_ca_is_p256_self_signed_for_twenty_years(ca: RootCA) -> None:
    cert = ca.certificate
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.issuer == cert.subject
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 20 * 365
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.digest().startswith("sha256:") and len(ca.digest()) == 7 + 64


def test_csr_flow_sets_cn_ou_and_cluster(ca: RootCA) -> None:
    key_pem, csr_pem = generate_key_and_csr()
    cert_pem = ca.sign_csr(csr_pem, node_id="node-7", role=NodeRole.WORKER, cluster_id="c1")
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-7"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "swarm-worker"
    assert ca.verify(cert_pem) == NodeIdentity(node_id="node-7", role=NodeRole.WORKER, cluster_id="c1")


def test_certificate_from_another_ca_is_refused_by_verify(ca: RootCA) -> None:
    other = RootCA.create().issue(node_id="x", role=NodeRole.MANAGER, cluster_id="evil")
    with pytest.raises(CertificateError, match="not issued by this cluster's CA"):
        ca.verify(other.cert_pem)


def test_ca_without_key_cannot_sign(ca: RootCA) -> None:
    _, csr_pem = generate_key_and_csr()
    with pytest.raises(CertificateError, match="no CA key"):
        RootCA(cert_pem=ca.cert_pem).sign_csr(csr_pem, node_id="n", role=NodeRole.WORKER, cluster_id="c")


def test_join_token_format(ca: RootCA) -> None:
    tokens = generate_join_tokens(ca)
    for token in (tokens.worker, tokens.manager):
        prefix, version, digest, secret = token.split("-")
        assert (prefix, version, len(digest), len(secret)) == ("SWMTKN", "1", 50, 25)
        assert parse_join_token(token).ca_digest == digest
    assert tokens.worker != tokens.manager
    assert tokens.worker.split("-")[2] == tokens.manager.split("-")[2]


def test_tokens_grant_roles_and_rotation_invalidates(ca: RootCA) -> None:
    tokens = generate_join_tokens(ca)
    assert role_for_token(tokens.worker, tokens, ca) is NodeRole.WORKER
    assert role_for_token(tokens.manager, tokens, ca) is NodeRole.MANAGER
    rotated = rotate_join_tokens(tokens, ca, worker=True)
    assert rotated.manager == tokens.manager and rotated.worker != tokens.worker
    with pytest.raises(InvalidJoinToken, match="secret is wrong or was rotated"):
        role_for_token(tokens.worker, rotated, ca)


@pytest.mark.parametrize(
    "token",
    ["", "SWMTKN-1-abc-def", "SWMTKN-2-" + "0" * 50 + "-" + "0" * 25, "XXX-1-" + "0" * 50 + "-" + "0" * 25],
)
def test_malformed_tokens_are_refused_clearly(token: str) -> None:
    with pytest.raises(InvalidJoinToken, match="invalid join token"):
        parse_join_token(token)


def test_ca_digest_mismatch(ca: RootCA) -> None:
    token = generate_join_tokens(RootCA.create()).worker
    with pytest.raises(InvalidJoinToken, match="CA digest mismatch"):
        check_ca_digest(token, ca)
    with pytest.raises(InvalidJoinToken, match="CA digest mismatch"):
        role_for_token(token, JoinTokens(worker=token), ca)


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[tuple[int, list[object]]]:
    """Accept one connection, record the peer identity (or the handshake error), echo the role."""
    results: list[object] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                identity = peer_identity(tls)
                results.append(identity)
                tls.sendall(identity.role.value.encode())
        except (ssl.SSLError, OSError, CertificateError) as exc:
            results.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield port, results
    finally:
        thread.join(5)
        listener.close()


def connect(port: int, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=MANAGER_SERVER_NAME) as tls:
            return tls.recv(64)


def test_mutual_tls_handshake_identifies_a_worker(ca: RootCA, manager_cert: NodeCertificate) -> None:
    worker = ca.issue(node_id="w1", role=NodeRole.WORKER, cluster_id="c1")
    server = server_context(ca_pem=ca.cert_pem, cert_pem=manager_cert.cert_pem, key_pem=manager_cert.key_pem)
    client = client_context(ca_pem=ca.cert_pem, cert_pem=worker.cert_pem, key_pem=worker.key_pem)
    with tls_server(server) as (port, results):
        assert connect(port, client) == b"worker"
    assert results == [NodeIdentity(node_id="w1", role=NodeRole.WORKER, cluster_id="c1")]


def test_client_cert_from_another_ca_is_refused(ca: RootCA, manager_cert: NodeCertificate) -> None:
    stranger = RootCA.create().issue(node_id="w9", role=NodeRole.WORKER, cluster_id="c1")
    server = server_context(ca_pem=ca.cert_pem, cert_pem=manager_cert.cert_pem, key_pem=manager_cert.key_pem)
    client = client_context(ca_pem=ca.cert_pem, cert_pem=stranger.cert_pem, key_pem=stranger.key_pem)
    with tls_server(server) as (port, results):
        with pytest.raises((ssl.SSLError, OSError)):
            connect(port, client)
    assert isinstance(results[0], ssl.SSLError)


def test_missing_client_cert_is_refused(ca: RootCA, manager_cert: NodeCertificate) -> None:
    server = server_context(ca_pem=ca.cert_pem, cert_pem=manager_cert.cert_pem, key_pem=manager_cert.key_pem)
    with tls_server(server) as (port, results):
        with pytest.raises((ssl.SSLError, OSError)):
            connect(port, client_context(ca_pem=ca.cert_pem))
    assert isinstance(results[0], ssl.SSLError)


def test_a_worker_cannot_pose_as_a_manager(ca: RootCA) -> None:
    worker = ca.issue(node_id="w1", role=NodeRole.WORKER, cluster_id="c1")
    server = server_context(ca_pem=ca.cert_pem, cert_pem=worker.cert_pem, key_pem=worker.key_pem)
    manager_client = ca.issue(node_id="m2", role=NodeRole.MANAGER, cluster_id="c1")
    client = client_context(ca_pem=ca.cert_pem, cert_pem=manager_client.cert_pem, key_pem=manager_client.key_pem)
    with tls_server(server) as (port, _results):
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(port, client)


def test_identity_needs_a_role(ca: RootCA) -> None:
    with pytest.raises(CertificateError, match="no swarm role"):
        identity_from_certificate(ca.cert_pem)
