"""Secrets and configs are sealed before they enter the Raft log (AES-256-GCM), so the log and its
snapshots on disk never hold their content in the clear.

The key is derived (HKDF-SHA256) from the managers' shared Raft secret, which each manager keeps in its
own state file and receives over mutual TLS when it joins the Raft cluster; it is never written to the
log. Only managers can unseal; a node receives the plain content of the secrets its own tasks use, over
its mutual-TLS session.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from orchestrator.security.errors import SecurityError

_NONCE = 12
_INFO = b"pyswarm secrets and configs v1"


class Sealer:
    def __init__(self, raft_secret: str) -> None:
        if not raft_secret:
            raise SecurityError("no Raft secret on this manager: cannot seal secrets")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raft_secret.encode())
        self._aead = AESGCM(key)

    def seal(self, data: bytes, *, context: str) -> bytes:
        """nonce || ciphertext+tag; `context` (the object's id) is bound as associated data."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context.encode())

    def unseal(self, sealed: bytes, *, context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise SecurityError(f"sealed content of {context} does not open with this manager's key") from exc


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
