"""A content-addressed blob cache: `<root>/blobs/sha256/<hex>`, each written once (temp file, digest checked,
rename), never changed; `<root>/locks/` serialises the export of one manifest across threads and processes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from node.images.model import hex_of
from orchestrator.distribution.errors import DigestInvalid, RegistryError


class BlobCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"

    def path(self, digest: str) -> Path:
        """Where the blob `sha256:<hex>` is (or would be); DigestInvalid for anything else."""
        return self.blobs / _hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def put(self, digest: str, chunks: Iterable[bytes]) -> None:
        """Store `chunks` as blob `digest` unless it is there; refuses content that does not hash to it."""
        final = self.path(digest)
        if final.is_file():
            for _chunk in chunks:  # the caller's stream is consumed either way
                pass
            return
        self.blobs.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=self.blobs)
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    hasher.update(chunk)
                    fh.write(chunk)
            if f"sha256:{hasher.hexdigest()}" != digest:
                raise RegistryError(f"exported blob {digest} does not match its digest")
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def locked(self, digest: str) -> Iterator[None]:
        """An exclusive lock named by `digest` (flock: it holds across the daemon's two API servers too)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(locks / _hex(digest), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _hex(digest: str) -> str:
    try:
        return hex_of(digest)
    except ValueError:
        raise DigestInvalid(f"invalid digest {digest!r}: only sha256:<64 hex> is served") from None
