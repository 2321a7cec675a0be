"""Download data files safely: from a list of mirrors, checksum-verified, never half-written.

A file is streamed into a hidden temporary file next to its destination and only
renamed into place once it is complete and its checksum matches, so an
interrupted or failed download never leaves a broken file behind.
"""

from __future__ import annotations

import http.client
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from .idx import DataError, PathLike, md5_of_content

__all__ = ["download_file", "mirrors_from_env", "DownloadError", "MIRRORS_ENV"]

MIRRORS_ENV = "CNN_NUMPY_MIRRORS"

HOW_TO_FIX = (
    f"Check your network connection, set ${MIRRORS_ENV} to space-separated base URLs of "
    "working mirrors, or download the files yourself and put them into --data-dir."
)


class DownloadError(DataError):
    """No mirror delivered the file; `reason` says why in one sentence, without the advice."""

    def __init__(self, reason: str):
        super().__init__(f"{reason}. {HOW_TO_FIX}")
        self.reason = reason


class _MirrorError(Exception):
    """This mirror did not deliver a good file; the next one may."""


def mirrors_from_env(default: Sequence[str]) -> list[str]:
    """Base URLs to try: $CNN_NUMPY_MIRRORS (space-separated) if set and non-empty, else default."""
    from_env = os.environ.get(MIRRORS_ENV, "").split()
    return from_env if from_env else list(default)


def download_file(
    filename: str,
    dest_dir: PathLike,
    mirrors: Sequence[str],
    expected_md5: str,
    *,
    progress: bool = True,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> Path:
    """Download `filename` from the first mirror that delivers it intact; returns dest_dir/filename.

    `expected_md5` is the MD5 of the decompressed content (the file may be gzipped).
    Raises DataError, listing each mirror's problem, when no mirror works; the folders
    made for the file are then removed again if they are still empty.
    """
    dest_dir = Path(dest_dir)
    made = [folder for folder in (dest_dir, *dest_dir.parents) if not folder.exists()]
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _from_mirrors(filename, dest_dir, mirrors, expected_md5, progress,
                             (connect_timeout, read_timeout))
    except DownloadError:
        for folder in made:  # deepest first; rmdir leaves a folder that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _from_mirrors(filename: str, dest_dir: Path, mirrors: Sequence[str], expected_md5: str,
                  progress: bool, timeout: tuple[float, float]) -> Path:
    """dest_dir/filename from the first mirror that delivers it intact (download_file)."""
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            _download_one(url, filename, dest_dir, expected_md5, progress, timeout)
            return dest_dir / filename
        except _MirrorError as exc:
            failures.append((url, str(exc)))
    if failures and all(reason.startswith("cannot resolve") for _, reason in failures):
        hosts = ", ".join(urlsplit(url).hostname or url for url, _ in failures)
        raise DownloadError(f"could not download {filename}: no network (cannot resolve "
                            f"{hosts})")
    tried = "; ".join(f"{url}: {reason}" for url, reason in failures) or "no mirrors given"
    raise DownloadError(f"could not download {filename} (tried {tried})")


def _download_one(
    url: str,
    filename: str,
    dest_dir: Path,
    expected_md5: str,
    progress: bool,
    timeout: tuple[float, float],
) -> None:
    """Fetch one URL into dest_dir/filename, or raise _MirrorError leaving nothing behind."""
    part = tempfile.NamedTemporaryFile(
        dir=dest_dir, delete=False, prefix="." + filename + ".", suffix=".part"
    )
    part_path = Path(part.name)
    done = False
    try:
        with part:
            _stream_to(url, part, filename, progress, timeout)
            part.flush()
            os.fsync(part.fileno())
        actual = _checksum(part_path)
        if actual != expected_md5:
            raise _MirrorError(
                f"checksum mismatch for {filename}: MD5 of the content is {actual}, "
                f"expected {expected_md5}"
            )
        os.replace(part_path, dest_dir / filename)
        done = True
    except (requests.RequestException, http.client.HTTPException, OSError) as exc:
        raise _MirrorError(_short_reason(exc)) from exc
    finally:
        # Also runs for KeyboardInterrupt, which then propagates unchanged.
        if not done:
            part_path.unlink(missing_ok=True)


def _stream_to(
    url: str, out: BinaryIO, filename: str, progress: bool, timeout: tuple[float, float]
) -> None:
    """Stream the body of a GET request into the open file `out`, checking its length."""
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(
            # disable=None: a bar only on a terminal, never lines in a log
            total=expected, unit="B", unit_scale=True, desc=filename,
            disable=None if progress else True,
        ) as bar:
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # With a Content-Encoding the length counts compressed bytes, so it cannot be compared.
    if expected is not None and "Content-Encoding" not in response.headers:
        if received != expected:
            raise _MirrorError(f"connection dropped: received {received} of {expected} bytes")


def _checksum(path: Path) -> str:
    """MD5 of the decompressed content; a file that is not valid gzip is a bad download."""
    try:
        return md5_of_content(path)
    except DataError as exc:
        raise _MirrorError("the downloaded file is corrupt (not valid gzip)") from exc


def _short_reason(exc: BaseException) -> str:
    """One line describing a network error, without the long urllib3 reprs."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    text = str(exc)
    # A read timeout while streaming arrives as a ConnectionError, not a Timeout.
    if isinstance(exc, requests.Timeout) or "timed out" in text:
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"connection dropped mid-file ({text[:200]})"
    if isinstance(exc, requests.ConnectionError):
        if "refused" in text.lower():
            return "connection refused"
        if "resolve" in text.lower() or "name or service not known" in text.lower():
            return "cannot resolve the host name (no network?)"
        return f"connection error ({text[:120]})"
    if isinstance(exc, requests.RequestException):
        return f"{type(exc).__name__} ({text[:200]})"
    return f"{type(exc).__name__}: {exc}"
