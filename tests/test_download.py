"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves in chosen ways.

The server serves the files in one folder under several path prefixes; each prefix
acts as a separate mirror:

    /ok/NAME       the file
    /missing/NAME  404
    /wrong/NAME    a valid gzip file with the wrong content
    /drop/NAME     sends Content-Length, half the file, then closes the connection
    /stall/NAME    sends half the file, then waits (for read timeouts)
    /interrupt/NAME  sends half the file, then SIGINT to the test's main thread
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cnn_numpy.data import (
    DataError,
    download_file,
    find_or_download,
    load_dataset,
    md5_of_content,
    mirrors_from_env,
    write_idx,
)

NAME = "t10k-labels-idx1-ubyte.gz"


class MirrorHandler(BaseHTTPRequestHandler):
    server: MirrorServer

    def do_GET(self) -> None:
        mode, _, name = self.path.lstrip("/").partition("/")
        path = self.server.root / name
        if mode == "missing" or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if mode == "wrong":
            data = gzip.compress(b"not the file you are looking for")
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode in ("drop", "stall", "interrupt"):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if mode == "interrupt":
                self._interrupt_until_hung_up()
            if mode == "stall":
                self.server.release.wait(10)
            self.close_connection = True
            return
        self.wfile.write(data)

    def _interrupt_until_hung_up(self) -> None:
        """Ctrl-C for the test's main thread once it waits for the rest of the file, again
        every 2 s until it hangs up (at most 10 s).

        The pause lets the client reach its blocking read: a signal that lands
        in the middle of its first-request imports aborts them instead.  The
        repeats cover a signal that got lost on a loaded machine (seen once in
        CI: the download waited for the server to close instead).
        """
        time.sleep(0.2)
        self.connection.settimeout(2)
        for _ in range(5):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            try:
                if self.connection.recv(1) == b"":  # the client closed the connection
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.root = root
        self.release = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def served(tmp_path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    return folder


@pytest.fixture
def server(served):
    srv = MirrorServer(served)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a local port that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Never touch the real cache or real mirrors."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CNN_NUMPY_DATA", str(tmp_path / "env-data"))
    monkeypatch.delenv("CNN_NUMPY_MIRRORS", raising=False)


@pytest.fixture
def labels_file(served) -> tuple[str, str]:
    """A small gzipped IDX labels file on the server: (name, MD5 of its content)."""
    write_idx(served / NAME, np.arange(50, dtype=np.uint8) % 10, gz=True)
    return NAME, md5_of_content(served / NAME)


@pytest.fixture
def dest(tmp_path) -> Path:
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success(server, served, labels_file, dest):
    name, md5 = labels_file
    path = download_file(name, dest, [server.url + "/ok/"], md5, progress=False)
    assert path == dest / name
    assert path.read_bytes() == (served / name).read_bytes()
    assert files_in(dest) == [name]


def test_success_creates_dest_and_keeps_logs_clean(server, labels_file, tmp_path, capsys):
    name, md5 = labels_file
    dest = tmp_path / "new" / "folder"
    download_file(name, dest, [server.url + "/ok"], md5, progress=True)
    assert files_in(dest) == [name]
    # the progress bar is drawn on a terminal only: captured stderr is not one
    assert capsys.readouterr().err == ""


def test_checksum_mismatch(server, labels_file, dest):
    name, md5 = labels_file
    with pytest.raises(DataError, match=f"checksum mismatch for {name}"):
        download_file(name, dest, [server.url + "/wrong/"], md5, progress=False)
    assert files_in(dest) == []


def test_dropped_connection(server, labels_file, dest):
    name, md5 = labels_file
    with pytest.raises(DataError, match=name):
        download_file(name, dest, [server.url + "/drop/"], md5, progress=False)
    assert files_in(dest) == []


def test_read_timeout(server, labels_file, dest):
    name, md5 = labels_file
    with pytest.raises(DataError, match="timed out"):
        download_file(name, dest, [server.url + "/stall/"], md5, progress=False, read_timeout=0.3)
    assert files_in(dest) == []


def test_keyboard_interrupt_cleans_up_and_propagates(server, labels_file, dest):
    name, md5 = labels_file
    with pytest.raises(KeyboardInterrupt):
        download_file(name, dest, [server.url + "/interrupt/"], md5, progress=False)
    assert files_in(dest) == []


def test_404_then_next_mirror(server, labels_file, dest):
    name, md5 = labels_file
    mirrors = [server.url + "/missing/", server.url + "/ok/"]
    download_file(name, dest, mirrors, md5, progress=False)
    assert files_in(dest) == [name]


def test_connection_refused_then_next_mirror(server, closed_port_url, labels_file, dest):
    name, md5 = labels_file
    download_file(name, dest, [closed_port_url, server.url + "/ok/"], md5, progress=False)
    assert files_in(dest) == [name]


def test_all_mirrors_fail_lists_each_reason_and_the_fix(server, closed_port_url, labels_file, dest):
    name, md5 = labels_file
    mirrors = [
        server.url + "/missing/",
        closed_port_url,
        server.url + "/wrong/",
        server.url + "/drop/",
    ]
    with pytest.raises(DataError) as info:
        download_file(name, dest, mirrors, md5, progress=False)
    message = str(info.value)
    assert "404" in message
    assert "refused" in message
    assert f"checksum mismatch for {name}" in message
    assert message.count(name) >= 4  # every URL tried is listed
    assert "CNN_NUMPY_MIRRORS" in message and "--data-dir" in message
    assert files_in(dest) == []


def test_mirrors_from_env(monkeypatch):
    default = ["https://a.example/", "https://b.example/"]
    assert mirrors_from_env(default) == default
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", "  ")
    assert mirrors_from_env(default) == default
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", "http://127.0.0.1:1/x/  http://localhost/y")
    assert mirrors_from_env(default) == ["http://127.0.0.1:1/x/", "http://localhost/y"]


# ---------------------------------------------------------------- find_or_download / load_dataset


@pytest.fixture
def fake_mnist(served) -> dict[str, str]:
    """Four small IDX files on the server, as a {base name: MD5} table for find_or_download."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        write_idx(
            served / f"{split}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            gz=True,
        )
        write_idx(
            served / f"{split}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10, gz=True
        )
    return {p.name[:-3]: md5_of_content(p) for p in served.glob("*.gz")}


def test_find_or_download_into_data_dir_then_finds_it_offline(
    server, fake_mnist, dest, monkeypatch, closed_port_url
):
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", server.url + "/ok/")
    folder = find_or_download("mnist", dest, progress=False, files=fake_mnist)
    assert folder == dest
    assert files_in(dest) == sorted(name + ".gz" for name in fake_mnist)

    monkeypatch.setenv("CNN_NUMPY_MIRRORS", closed_port_url)
    assert find_or_download("mnist", dest, download=False, files=fake_mnist) == dest


def test_find_or_download_into_cache(server, fake_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", server.url + "/missing/ " + server.url + "/ok/")
    folder = find_or_download("mnist", progress=False, files=fake_mnist)
    assert folder == tmp_path / "cache" / "cnn-numpy" / "mnist"
    assert len(files_in(folder)) == 4


def test_find_or_download_fetches_only_missing_files(server, served, fake_mnist, dest, monkeypatch):
    have = "t10k-labels-idx1-ubyte"
    (dest / have).write_bytes(gzip.decompress((served / (have + ".gz")).read_bytes()))
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", server.url + "/ok/")
    find_or_download("mnist", dest, progress=False, files=fake_mnist)
    assert have in files_in(dest) and have + ".gz" not in files_in(dest)
    assert len(files_in(dest)) == 4


def test_real_mnist_unavailable_leaves_nothing_behind(server, dest, monkeypatch):
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", server.url + "/missing/")
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=dest, download=True, progress=False)
    message = str(info.value)
    assert "404" in message and str(dest) in message and "--data-dir" in message
    assert files_in(dest) == []


def test_a_failed_download_takes_back_the_folders_it_made(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", server.url + "/missing/")
    typo = tmp_path / "sahred" / "mnist"  # a --data-dir spelt wrong
    with pytest.raises(DataError, match=rf" in {re.escape(str(typo))} \(no such folder\), "):
        load_dataset("mnist", data_dir=typo, progress=False)
    assert not (tmp_path / "sahred").exists()
    with pytest.raises(DataError, match=r"HTTP 404") as info:  # into the cache, by default
        load_dataset("mnist", progress=False)
    assert "no such folder" not in str(info.value)
    assert not (tmp_path / "cache" / "cnn-numpy").exists()


def test_default_dataset_falls_back_to_sample_with_one_log_line(server, dest, monkeypatch):
    monkeypatch.setenv("CNN_NUMPY_MIRRORS", server.url + "/missing/")
    lines: list[str] = []
    data = load_dataset(None, progress=False, log=lines.append)
    assert data.name == "mnist-sample"
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "cnn-numpy").exists()  # none left empty
    assert (len(data.x_train), len(data.x_test)) == (9000, 1000)
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "sample" in lines[0] and "--data-dir" in lines[0]
    # a folder that was named is used or refused, never silently replaced by the sample
    with pytest.raises(DataError, match="not available locally.*HTTP 404.*--dataset "
                                        "mnist-sample") as info:
        load_dataset(None, data_dir=dest, progress=False, log=lines.append)
    assert "\n" not in str(info.value) and len(lines) == 1
    assert files_in(dest) == []
