"""Where landed data lives: a local folder by default, an object store in production.

One URL, ``GTM_STORAGE_URL``, names the root under which the landing zone
(``landing/files/...``, ``landing/webhooks/...``) and the receiver's spool live: a local
folder (the default, ``$GTM_DATA_DIR``) or ``s3://bucket/prefix`` (any fsspec URL works as
far as fsspec supports it; S3 is the one tested). Paths are ``UPath`` objects: on a local
folder they are ``pathlib.Path`` objects and behave exactly as before; on an object store
they read and list through fsspec, so a step running in another process, container or
machine sees the same landing zone.

What the pipeline promises holds on both:

- a file appears under its final name whole or not at all (``write_atomically``: a local
  file is written in a staging folder, fsynced and renamed; an object is one PUT, which an
  object store makes visible only once complete);
- listings are never served from a cache (``walk_files``), so sensors see new objects;
- DuckDB reads an object through the same filesystem (``duckdb_reader``), in blocks, never
  as one whole download in memory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
from upath import UPath

# Protocols of the local filesystem, as fsspec and universal_pathlib name them.
_LOCAL_PROTOCOLS = ("", "file", "local")
# What a read from an object store fetches at a time: the most of a file held in memory.
READ_BLOCK_BYTES = 8 * 1024 * 1024
# Permissions of files the pipeline writes in a local landing zone (the receiver's batches).
FILE_MODE = 0o640


def storage_root(url: str | os.PathLike[str], *, endpoint_url: str | None = None) -> UPath:
    """The storage root ``url`` names: a local folder (made absolute) or an object store.

    ``endpoint_url`` points an ``s3://`` root at an S3-compatible server other than AWS
    (MinIO, a local test server); credentials come from the usual AWS variables
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...), read by
    the S3 client itself, never by this code, so they never appear in a path or a log.
    """
    if "://" not in str(url):
        return UPath(Path(url).resolve())
    if urlsplit(str(url)).password is not None:
        # Paths are printed in logs and run metadata: a secret must not travel in one.
        raise ValueError(
            "GTM_STORAGE_URL: credentials do not belong in the URL; set them in the "
            "environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://)"
        )
    root = UPath(url)
    if is_local(root):
        return UPath(Path(root.path).resolve())
    options: dict[str, Any] = {}
    if root.protocol in ("s3", "s3a"):
        # Sensors list the same prefixes every few seconds: a cached listing would hide new
        # objects from them.
        options["use_listings_cache"] = False
        # Reads fetch (and hold) this much at a time; s3fs's default is 50 MiB.
        options["default_block_size"] = READ_BLOCK_BYTES
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
    return UPath(str(root), **options) if options else root


def as_upath(path: str | os.PathLike[str]) -> UPath:
    """``path`` as a UPath (a local ``Path`` stays local)."""
    return path if isinstance(path, UPath) else UPath(path)


def is_local(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is on the local filesystem."""
    return isinstance(path, Path) or as_upath(path).protocol in _LOCAL_PROTOCOLS


@dataclass(frozen=True)
class StoredFile:
    """A file in storage as a listing sees it: no content read."""

    path: UPath
    folder: tuple[str, ...]  # the folders between the listed top and the file
    size_bytes: int
    mtime_ns: int


def walk_files(
    top: str | os.PathLike[str],
    *,
    keep_folder: Callable[[tuple[str, ...]], bool] | None = None,
    max_depth: int | None = None,
) -> list[StoredFile]:
    """Every file below ``top`` whose name does not start with a dot (an upload under way).

    ``keep_folder`` gets each folder's path below ``top`` (as a tuple of names) and decides
    whether to descend into it; ``max_depth`` limits how many folders deep files are
    looked for. A missing ``top`` has no files. Object stores are listed afresh, with
    their sizes and modification times from the listing itself (one request per page, not
    one per object); their times are whole seconds, as object stores keep them.
    """
    top = as_upath(top)
    found: list[StoredFile] = []
    if is_local(top):
        root = Path(top)
        for folder, subfolders, names in os.walk(root):
            relative = Path(folder).relative_to(root).parts
            if max_depth is not None and len(relative) >= max_depth:
                subfolders.clear()
            if keep_folder is not None:
                subfolders[:] = [s for s in subfolders if keep_folder((*relative, s))]
            for name in names:
                if name.startswith("."):
                    continue
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # removed since the folder was listed
                found.append(StoredFile(UPath(path), relative, stat.st_size, stat.st_mtime_ns))
        return found

    fs = top.fs
    base = top.path.rstrip("/")
    fs.invalidate_cache(base)
    for folder, subfolders, files in fs.walk(base, detail=True, topdown=True):
        relative = tuple(part for part in folder[len(base) :].split("/") if part)
        if max_depth is not None and len(relative) >= max_depth:
            subfolders.clear()
        if keep_folder is not None:
            for name in list(subfolders):
                if not keep_folder((*relative, name)):
                    del subfolders[name]
        for name, info in files.items():
            if name.startswith("."):
                continue
            path = top.joinpath(*relative, name)
            found.append(StoredFile(path, relative, int(info["size"]), _object_mtime_ns(info)))
    return found


def stat_file(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(size in bytes, modification time in ns)`` of one file, as ``walk_files`` gives them."""
    path = as_upath(path)
    if is_local(path):
        stat = Path(path).stat()
        return stat.st_size, stat.st_mtime_ns
    info = path.fs.info(path.path, refresh=True)
    return int(info["size"]), _object_mtime_ns(info)


def _object_mtime_ns(info: dict[str, Any]) -> int:
    """An object's modification time, whole seconds (listings and HEAD requests disagree
    below the second on some stores), in ns."""
    for key in ("LastModified", "last_modified", "updated", "mtime", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp()) * 1_000_000_000
        if isinstance(value, int | float):
            return int(value) * 1_000_000_000
        if isinstance(value, str) and value:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()) * 10**9
    raise ValueError(f"{info.get('name')}: the store gives no modification time for it")


def write_atomically(
    target: str | os.PathLike[str],
    content: bytes,
    *,
    staging_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``content`` to ``target`` so that no reader ever sees it partly written.

    Local: written in ``staging_dir`` (by default ``target``'s folder, under a dot-name the
    listings skip; it must be on the same filesystem), fsynced, then renamed over the final
    name, the missing folders created durably; the caller fsyncs ``target``'s folder
    (``sync_folder``) when the rename itself must survive a power cut. An existing file is
    never replaced: the name must be new. Object store: one PUT, visible only once the store
    has it all and durably. Raises OSError when it cannot be done.
    """
    target = as_upath(target)
    if not is_local(target):
        target.fs.pipe_file(target.path, content)
        return
    final = Path(target)
    staging = Path(staging_dir) if staging_dir is not None else final.parent
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / f".{final.name}.{uuid.uuid4().hex}.part"
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        create_durable_folder(final.parent)
        if final.exists():
            raise FileExistsError(f"{final}: already exists; landed files are never replaced")
        os.rename(staged, final)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def sync_folder(folder: str | os.PathLike[str]) -> None:
    """Make the entries of a local ``folder`` (a file renamed into it) survive a power cut.
    Nothing to do on an object store, where a completed PUT is durable."""
    if not is_local(folder):
        return
    descriptor = os.open(Path(folder), os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def create_durable_folder(folder: str | os.PathLike[str]) -> None:
    """Create a local ``folder`` and its missing parents, each fsynced into its parent.
    Object stores have no folders: nothing to do."""
    if not is_local(folder):
        return
    directory = Path(folder)
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        sync_folder(created.parent)


@contextmanager
def duckdb_reader(
    path: str | os.PathLike[str], local: Callable[[], duckdb.DuckDBPyConnection]
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A DuckDB connection that can read ``path``, and the name to give its table functions
    (``read_csv``, ...).

    Local: a connection from ``local()`` and the file's path. Object store: a connection to
    a fresh in-memory database with the path's fsspec filesystem registered, so DuckDB
    reads the object in ranges through it, never as one download in memory. The connection
    is closed on exit.
    """
    path = as_upath(path)
    if is_local(path):
        con = local()
        name = str(Path(path))
    else:
        con = duckdb.connect()
        con.register_filesystem(path.fs)
        name = str(path)
    try:
        yield con, name
    finally:
        con.close()
