"""Secrets and configs sealed before they enter the Raft log (security/sealing.py)."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator.security.errors import SecurityError
from orchestrator.security.sealing import Sealer, content_digest

PLAIN = b"correct horse battery staple"


def test_sealed_content_opens_again_with_the_same_secret_and_context() -> None:
    sealed = Sealer("raft-secret").seal(PLAIN, context="sec1")
    assert Sealer("raft-secret").unseal(sealed, context="sec1") == PLAIN  # another manager, same Raft secret


def test_empty_content_round_trips() -> None:
    sealer = Sealer("raft-secret")
    assert sealer.unseal(sealer.seal(b"", context="cfg1"), context="cfg1") == b""


def test_sealed_bytes_never_hold_the_plain_text() -> None:
    sealer = Sealer("raft-secret")
    sealed = sealer.seal(PLAIN, context="sec1")
    assert PLAIN not in sealed and b"horse" not in sealed
    assert len(sealed) == 12 + len(PLAIN) + 16  # nonce, ciphertext, tag


def test_each_seal_uses_a_fresh_nonce() -> None:
    sealer = Sealer("raft-secret")
    assert sealer.seal(PLAIN, context="sec1") != sealer.seal(PLAIN, context="sec1")


def test_another_raft_secret_cannot_unseal() -> None:
    sealed = Sealer("raft-secret").seal(PLAIN, context="sec1")
    with pytest.raises(SecurityError, match="sealed content of sec1 does not open with this manager's key"):
        Sealer("other-secret").unseal(sealed, context="sec1")


def test_another_context_cannot_unseal() -> None:
    """The object id is bound: content sealed for one secret can't be passed off as another's."""
    sealer = Sealer("raft-secret")
    sealed = sealer.seal(PLAIN, context="sec1")
    with pytest.raises(SecurityError, match="sec2"):
        sealer.unseal(sealed, context="sec2")


@pytest.mark.parametrize("damage", [lambda b: b[:-1] + bytes([b[-1] ^ 1]), lambda b: b[:5], lambda b: b""],
                         ids=["flipped", "truncated", "empty"])
def test_damaged_sealed_bytes_do_not_open(damage: object) -> None:
    sealer = Sealer("raft-secret")
    sealed = sealer.seal(PLAIN, context="sec1")
    with pytest.raises(SecurityError):
        sealer.unseal(damage(sealed), context="sec1")  # type: ignore[operator]


def test_a_manager_without_a_raft_secret_cannot_seal() -> None:
    with pytest.raises(SecurityError, match="no Raft secret"):
        Sealer("")


def test_content_digest_is_the_sha256_of_the_plain_content() -> None:
    assert content_digest(PLAIN) == hashlib.sha256(PLAIN).hexdigest()
