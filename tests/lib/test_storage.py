"""The storage under the landing zone: a local folder or an S3 bucket, read and written alike."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from upath import UPath

from gtm_orchestration.lib.landing import scan_dropped_files
from gtm_orchestration.lib.lead_files import FileRejected, LandedFile, read_lead_file
from gtm_orchestration.lib.mapping import load_registry
from gtm_orchestration.lib.storage import (
    is_local,
    stat_file,
    storage_root,
    walk_files,
    write_atomically,
)
from gtm_orchestration.settings import Settings
from tests.conftest import ObjectStore

LEADS = load_registry().source("leads")


@pytest.fixture
def bucket_root(object_store: ObjectStore) -> UPath:
    return storage_root(f"s3://{object_store.bucket}/gtm", endpoint_url=object_store.endpoint_url)


def _outcome(path: os.PathLike[str]) -> object:
    try:
        parsed = read_lead_file(path, LEADS)
    except FileRejected as rejected:
        return str(rejected).split(": ", 1)[1]  # the reason, without the file's name
    return parsed.rows_total, parsed.accepted.to_pylist(), parsed.rejections


def test_the_default_is_the_data_folder_and_a_url_selects_an_object_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GTM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GTM_STORAGE_URL", raising=False)
    settings = Settings.from_env()
    assert settings.files_landing_dir == tmp_path / "data" / "landing" / "files"
    assert is_local(settings.landing_dir)

    monkeypatch.setenv("GTM_STORAGE_URL", "s3://lead-drops/prod")
    monkeypatch.setenv("GTM_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    settings = Settings.from_env()
    assert str(settings.files_landing_dir) == "s3://lead-drops/prod/landing/files"
    assert not is_local(settings.landing_dir)
    # The warehouse and the receiver's dedupe store stay in the local data folder.
    assert settings.data_dir == tmp_path / "data"

    monkeypatch.setenv("GTM_STORAGE_URL", "s3://AKIAEXAMPLE:hunter2@lead-drops/prod")
    with pytest.raises(ValueError, match="credentials do not belong in the URL") as refused:
        _ = Settings.from_env().landing_dir
    assert "hunter2" not in str(refused.value)


def test_an_object_is_visible_whole_under_its_final_name_or_not_at_all(
    bucket_root: UPath, object_store: ObjectStore
) -> None:
    target = bucket_root / "landing" / "files" / "leads" / "big.csv"
    content = b"Email\n" + b"".join(b"lead%07d@acme.com\n" % n for n in range(100_000))
    write_atomically(target, content)
    assert object_store.keys() == ["gtm/landing/files/leads/big.csv"]
    assert object_store.get("gtm/landing/files/leads/big.csv") == content

    # A PUT that fails (the bucket is gone) leaves nothing under the final name.
    missing = storage_root(
        "s3://no-such-bucket/gtm", endpoint_url=object_store.endpoint_url
    ).joinpath("landing", "files", "leads", "x.csv")
    with pytest.raises(OSError):
        write_atomically(missing, b"Email\na@b.com\n")
    assert not missing.exists()


def test_a_local_file_is_renamed_into_place_and_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "landing" / "files" / "leads" / "drop.csv"
    write_atomically(target, b"Email\na@b.com\n")
    assert target.read_bytes() == b"Email\na@b.com\n"
    assert os.listdir(target.parent) == ["drop.csv"], "no staging file is left behind"
    with pytest.raises(FileExistsError, match="drop.csv"):
        write_atomically(target, b"Email\nother@b.com\n")
    assert target.read_bytes() == b"Email\na@b.com\n"
    assert os.listdir(target.parent) == ["drop.csv"]


def test_listings_see_new_objects_at_once_and_skip_uploads_under_way(
    bucket_root: UPath, object_store: ObjectStore
) -> None:
    files = bucket_root / "landing" / "files"
    assert scan_dropped_files(files) == []
    object_store.put("gtm/landing/files/leads/monday.csv", b"Email\na@acme.com\n")
    object_store.put("gtm/landing/files/leads/.tuesday.csv.part", b"Email\n")
    object_store.put("gtm/landing/files/stray.csv", b"Email\n")  # not in a source's folder
    (item,) = scan_dropped_files(files)
    assert (str(item.path), item.source, item.size_bytes) == (
        f"s3://{object_store.bucket}/gtm/landing/files/leads/monday.csv",
        "leads",
        17,
    )
    assert (item.size_bytes, item.mtime_ns) == stat_file(item.path)

    # A second listing right after a new PUT sees it: nothing is served from a cache.
    object_store.put("gtm/landing/files/webinar_attendees/tuesday.csv", b"Email\nb@acme.com\n")
    assert sorted(i.source for i in scan_dropped_files(files)) == ["leads", "webinar_attendees"]


def test_walks_prune_folders_the_same_locally_and_in_a_bucket(
    tmp_path: Path, bucket_root: UPath
) -> None:
    names = ["a/2026-11-01/x.jsonl", "a/2026-11-02/y.jsonl", "b/2026-11-02/z.jsonl", "top.txt"]
    for root in (UPath(tmp_path), bucket_root):
        for name in names:
            write_atomically(root / name, b"{}\n")

    def after_first(folders: tuple[str, ...]) -> bool:
        return folders[-1] != "2026-11-01"

    local = walk_files(tmp_path, keep_folder=after_first)
    remote = walk_files(bucket_root, keep_folder=after_first)
    assert sorted((f.folder, f.path.name, f.size_bytes) for f in local) == [
        ((), "top.txt", 3),
        (("a", "2026-11-02"), "y.jsonl", 3),
        (("b", "2026-11-02"), "z.jsonl", 3),
    ]
    assert sorted((f.folder, f.path.name, f.size_bytes) for f in remote) == sorted(
        (f.folder, f.path.name, f.size_bytes) for f in local
    )
    assert walk_files(tmp_path / "missing") == []
    assert walk_files(bucket_root / "missing") == []


@pytest.mark.parametrize(
    "content",
    [
        "Email,Company Name\na@acme.com,Acme\nbad@,Bad\n",
        'Email,Company\r\na@acme.com,"Acme\r\nWest"\r\n',
        'Email,Company\na@b.com,"x"y\n',  # left to csv
        "Mail,Company\na@b.com,x\n",  # headers that do not fit
        "   \n",
    ],
    ids=["batch", "crlf multiline", "left to csv", "wrong header", "blank"],
)
def test_a_file_in_a_bucket_reads_as_the_same_file_on_disk(
    tmp_path: Path, bucket_root: UPath, content: str
) -> None:
    local = tmp_path / "drop.csv"
    local.write_bytes(content.encode())
    remote = bucket_root / "landing" / "files" / "leads" / "drop.csv"
    write_atomically(remote, content.encode())
    assert _outcome(remote) == _outcome(local)


def test_a_file_over_several_blocks_is_hashed_and_checked_in_blocks(
    tmp_path: Path, bucket_root: UPath
) -> None:
    rows = b"".join(b"lead%07d@acme.com,Acme\n" % n for n in range(60_000))  # 1.4 MB
    content = b"Email,Company\n" + rows + b"late@acme.com,Caf\xe9\n"
    remote = bucket_root / "landing" / "files" / "leads" / "latin1.csv"
    write_atomically(remote, content)

    landed = LandedFile.inspect(remote, "leads")
    assert landed.sha256 == hashlib.sha256(content).hexdigest()
    assert landed.size_bytes == len(content)
    ((item,)) = scan_dropped_files(bucket_root / "landing" / "files")
    assert landed.modified_at.timestamp() == item.mtime_ns / 1e9

    # The byte that is not UTF-8 lies past the first block: named by its line and offset.
    with pytest.raises(FileRejected) as rejected:
        read_lead_file(remote, LEADS)
    offset = content.index(b"\xe9")
    assert str(rejected.value) == (
        f"{remote}: line 60002: byte 0xe9 at offset {offset} is not valid UTF-8; "
        "save the file as UTF-8 (CSV UTF-8 in Excel) and drop it again"
    )

    fixed = bucket_root / "landing" / "files" / "leads" / "utf8.csv"
    write_atomically(fixed, content.replace(b"\xe9", "é".encode()))
    parsed = read_lead_file(fixed, LEADS)
    assert parsed.rows_total == parsed.accepted.num_rows == 60_001
    assert parsed.accepted.to_pylist()[-1]["company"] == "Café"
