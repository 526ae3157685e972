"""Join tokens in Swarm's format: `SWMTKN-1-<CA digest, 50 base36>-<secret, 25 base36>`.

The digest (sha256 of the CA certificate's DER, in base36) lets a joining node check the CA it is
shown before trusting it; the secret, different for workers and managers, decides the role.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from orchestrator.model import JoinTokens, NodeRole
from orchestrator.security.ca import RootCA
from orchestrator.security.errors import InvalidJoinToken

TOKEN_PREFIX = "SWMTKN"
TOKEN_VERSION = 1
DIGEST_LENGTH = 50
SECRET_LENGTH = 25
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}-(\d+)-([0-9a-z]{{{DIGEST_LENGTH}}})-([0-9a-z]{{{SECRET_LENGTH}}})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinToken:
    version: int
    ca_digest: str  # base36, 50 characters
    secret: str  # base36, 25 characters


def base36(value: int, width: int) -> str:
    digits = []
    while value:
        value, rem = divmod(value, 36)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def ca_digest_base36(ca_cert_der: bytes) -> str:
    return base36(int.from_bytes(hashlib.sha256(ca_cert_der).digest(), "big"), DIGEST_LENGTH)


def generate_join_token(root_ca: RootCA) -> str:
    secret = base36(secrets.randbits(128), SECRET_LENGTH)
    return f"{TOKEN_PREFIX}-{TOKEN_VERSION}-{ca_digest_base36(root_ca.cert_der)}-{secret}"


def generate_join_tokens(root_ca: RootCA) -> JoinTokens:
    return JoinTokens(worker=generate_join_token(root_ca), manager=generate_join_token(root_ca))


def rotate_join_tokens(
    tokens: JoinTokens, root_ca: RootCA, *, worker: bool = False, manager: bool = False
) -> JoinTokens:
    """New secrets for the chosen roles (`docker swarm join-token --rotate worker|manager`)."""
    return JoinTokens(
        worker=generate_join_token(root_ca) if worker else tokens.worker,
        manager=generate_join_token(root_ca) if manager else tokens.manager,
    )


def parse_join_token(token: str) -> JoinToken:
    match = _TOKEN.match(token.strip())
    if match is None:
        raise InvalidJoinToken(
            f"invalid join token: expected {TOKEN_PREFIX}-1-<{DIGEST_LENGTH} characters>-<{SECRET_LENGTH} characters>"
        )
    version = int(match.group(1))
    if version != TOKEN_VERSION:
        raise InvalidJoinToken(f"invalid join token: version {version} is not supported")
    return JoinToken(version=version, ca_digest=match.group(2), secret=match.group(3))


def check_ca_digest(token: str, root_ca: RootCA) -> None:
    """The joining node's check: the CA the manager showed is the one the token pins."""
    parsed = parse_join_token(token)
    if not hmac.compare_digest(parsed.ca_digest, ca_digest_base36(root_ca.cert_der)):
        raise InvalidJoinToken("join token does not match this cluster's CA (CA digest mismatch): refusing to trust it")


def role_for_token(token: str, tokens: JoinTokens, root_ca: RootCA) -> NodeRole:
    """The manager's check: which role `token` grants, or `InvalidJoinToken`."""
    check_ca_digest(token, root_ca)
    secret = parse_join_token(token).secret
    for role, current in ((NodeRole.MANAGER, tokens.manager), (NodeRole.WORKER, tokens.worker)):
        if current and hmac.compare_digest(secret, parse_join_token(current).secret):
            return role
    raise InvalidJoinToken("invalid join token: the secret is wrong or was rotated")
