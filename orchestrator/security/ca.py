"""The cluster's root CA and node certificates, as SwarmKit issues them.

The root CA is a self-signed ECDSA P-256 certificate (CN `swarm-ca`, 20 years). A node
certificate carries the node id as CN, the role as OU (`swarm-manager` / `swarm-worker`) and the
cluster id as O, with the role and node id as DNS names: an agent connects to a manager with
`server_hostname="swarm-manager"`, so only a manager certificate can answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.model import NodeRole
from orchestrator.security.errors import CertificateError

CA_COMMON_NAME = "swarm-ca"
MANAGER_OU = "swarm-manager"
WORKER_OU = "swarm-worker"
ROLE_OUS = {NodeRole.MANAGER: MANAGER_OU, NodeRole.WORKER: WORKER_OU}
OU_ROLES = {ou: role for role, ou in ROLE_OUS.items()}
CA_VALIDITY = dt.timedelta(days=20 * 365)
NODE_CERT_VALIDITY = dt.timedelta(days=90)
_BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew between managers and nodes


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    node_id: str
    role: NodeRole
    cluster_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCertificate:
    key_pem: bytes
    cert_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_key_and_csr() -> tuple[bytes, bytes]:
    """A node's side of joining: a fresh key and a CSR for it. The CA decides the CN and OU."""
    key = generate_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return key_to_pem(key), csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCA:
    """The CA certificate, and its key on managers that sign (None where only verifying)."""

    cert_pem: bytes
    key_pem: bytes | None = None

    @classmethod
    def create(cls, *, common_name: str = CA_COMMON_NAME, validity: dt.timedelta = CA_VALIDITY) -> RootCA:
        key = generate_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=key_to_pem(key))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def digest(self) -> str:
        """ "sha256:<hex>" of the certificate's DER, as shown to users and pinned by join tokens."""
        return "sha256:" + hashlib.sha256(self.cert_der).hexdigest()

    def sign_csr(
        self,
        csr_pem: bytes,
        *,
        node_id: str,
        role: NodeRole,
        cluster_id: str,
        addresses: Sequence[str] = (),
        validity: dt.timedelta = NODE_CERT_VALIDITY,
    ) -> bytes:
        """Issue a node certificate for the CSR's key; the subject comes from the CA, not the CSR."""
        csr = _load_csr(csr_pem)
        ca_key = self._signing_key()
        ca_cert = self.certificate
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_OUS[role]),
                x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(_san(node_id, role, addresses)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *, node_id: str, role: NodeRole, cluster_id: str, addresses: Sequence[str] = ()) -> NodeCertificate:
        """Key, CSR and signature in one step (for the first manager, and for tests)."""
        key_pem, csr_pem = generate_key_and_csr()
        cert_pem = self.sign_csr(csr_pem, node_id=node_id, role=role, cluster_id=cluster_id, addresses=addresses)
        return NodeCertificate(key_pem=key_pem, cert_pem=cert_pem)

    def verify(self, cert_pem: bytes) -> NodeIdentity:
        """Check that this CA signed `cert_pem` and that it is valid now; return who it names."""
        cert = _load_cert(cert_pem)
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateError("certificate was not issued by this cluster's CA") from exc
        now = _now()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CertificateError(f"certificate for {_common_name(cert)} is expired or not yet valid")
        return identity_from_certificate(cert)

    def _signing_key(self) -> ec.EllipticCurvePrivateKey:
        if self.key_pem is None:
            raise CertificateError("this manager holds no CA key: it cannot sign certificates")
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError("the CA key is not an ECDSA key")
        return key


def identity_from_certificate(cert: x509.Certificate | bytes) -> NodeIdentity:
    """Node id, role and cluster from a node certificate (PEM or DER bytes, or a loaded one)."""
    if isinstance(cert, bytes):
        cert = _load_cert(cert)
    ous = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    role = next((OU_ROLES[str(ou)] for ou in ous if ou in OU_ROLES), None)
    if role is None:
        raise CertificateError(f"certificate for {_common_name(cert)} carries no swarm role (OU)")
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return NodeIdentity(node_id=_common_name(cert), role=role, cluster_id=str(orgs[0].value) if orgs else "")


def _san(node_id: str, role: NodeRole, addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(ROLE_OUS[role]), x509.DNSName(node_id)]
    for address in addresses:
        try:
            names.append(x509.IPAddress(ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "(no CN)"


def _load_cert(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"unreadable certificate: {exc}") from exc


def _load_csr(data: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise CertificateError(f"unreadable certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CertificateError("the certificate signing request's signature is invalid")
    return csr
