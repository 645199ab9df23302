"""Which files an image was made from, and whether they changed since it was scored.

A resumed bench run must not serve numbers of an image whose file was replaced under the same
name. Each results row stores its source files' ``size:mtime`` (cheap to check) and the SHA-256
of their contents; on resume a different ``size:mtime`` triggers a hash, and only a different
hash counts as a change (a copied or touched but identical file is not rescored).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path


def stat_signature(paths: Sequence[str | os.PathLike]) -> str:
    parts = []
    for p in paths:
        st = os.stat(p)
        parts.append(f"{Path(p).name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def content_sha256(paths: Sequence[str | os.PathLike]) -> str:
    """SHA-256 over the files' own SHA-256 digests, in order."""
    outer = hashlib.sha256()
    for p in paths:
        inner = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(inner.digest())
    return outer.hexdigest()


def signature(paths: Sequence[str | os.PathLike]) -> tuple[str, str]:
    """(``size:mtime`` signature, content hash) of ``paths``; empty strings when there are none."""
    if not paths:
        return "", ""
    return stat_signature(paths), content_sha256(paths)


def changed(paths: Sequence[str | os.PathLike], stat: str, sha256: str) -> bool:
    """Whether ``paths`` differ from the recorded signature (hashing only when size or mtime moved)."""
    if not paths or not sha256:
        return False
    try:
        if stat_signature(paths) == stat:
            return False
        return content_sha256(paths) != sha256
    except OSError:
        return True
