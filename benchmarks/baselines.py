"""The baselines ocrwatch is compared with, as small programs run in their own process.

``python -m benchmarks.baselines seed ...``
    "The seed's way": one thread reads each image, crops ``left`` pixels off
    (``img[0:height, 400:width]``), encodes JPEG quality 90 with OpenCV and
    posts it with ``requests.post``, one image at a time, whatever the size of
    the encode, then writes ``X.txt``. It waits for a folder name on stdin,
    does that folder, prints ``done N TOTAL_BYTES MAX_BYTES`` (of the
    uploads), and waits for the next.

``python -m benchmarks.baselines seed-once ... PATH...``
    The same per image, as a program run once over the given images (or the
    images of the given folders), then exit: the seed's script timed as a
    whole process, start-up included. This mode imports what the seed's
    script imports (OpenCV, NumPy, requests), nothing the watchers need.

``python -m benchmarks.baselines bare ... --threads N``
    What the server and the machine allow any client: the given files are
    uploads already encoded (read into memory before the clock starts) and
    go to the server from N threads, each with its own kept-alive
    ``requests`` session, nothing decoded, nothing written. It waits for a
    folder name on stdin, posts every file in it, prints ``done N SECONDS``
    (from the first post to the last answer), and waits for the next.

``python -m benchmarks.baselines watch --policy stability|ocrmypdf ...``
    A folder watcher with another project's readiness policy, then the same
    OCR call ocrwatch makes (the file's bytes posted to the same server over
    a kept-alive session) and the same durable sidecars (``X.txt`` then
    ``X.json``, each written to a temporary name, fsynced and renamed):

    * ``stability`` simulates paperless-ngx 3's consumer: a file is consumed
      once its size and mtime have stayed the same for
      ``PAPERLESS_CONSUMER_STABILITY_DELAY`` (default 5 s), checked every
      0.1 s after the last file-system event for it;
    * ``ocrmypdf`` simulates OCRmyPDF's ``misc/watcher.py`` with its
      defaults: on a *created* event (watchdog's native observer), the
      handler tries to open and fully decode the file, sleeps
      ``OCR_POLL_NEW_FILE_SECONDS`` (1 s) after each failure, up to
      ``OCR_RETRIES_LOADING_FILE`` (5) tries, all in the observer's thread;
    * ``ocrmypdf-poll`` is the same with ``OCR_USE_POLLING`` set: watchdog's
      polling observer, which looks at the folder once a second.

These are simulations of readiness policies written for this benchmark, not
the other projects' code. Both print ``ready`` once watching.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import requests

# The watchers' libraries (watchdog, Pillow) load when a watcher starts, so that
# `seed-once`, timed as a whole process, pays for the seed's own imports only.
if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
REQUEST_TIMEOUT = (10.0, 120.0)
STABILITY_CHECK_SECONDS = 0.1
MIME = {"JPG": "image/jpeg", "PNG": "image/png", "TIF": "image/tiff"}


def _filetype(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return "JPG"
    if data.startswith(b"\x89PNG"):
        return "PNG"
    return "TIF"


def _fields(filetype: str) -> dict[str, str]:
    return {
        "language": "eng",
        "isOverlayRequired": "false",
        "detectOrientation": "true",
        "scale": "false",
        "isTable": "false",
        "OCREngine": "1",
        "filetype": filetype,
    }


def _text_of(answer: dict[str, object]) -> str:
    results = answer.get("ParsedResults") or []
    assert isinstance(results, list)
    return "".join(str(page.get("ParsedText") or "") for page in results if isinstance(page, dict))


def _write_durably(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.write(handle, data)
        os.fsync(handle)
    finally:
        os.close(handle)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# --------------------------------------------------------------------------
# The seed's loop


def _seed_one(path: Path, arguments: argparse.Namespace) -> int:
    """The seed's treatment of one image: read, crop, encode, post, write ``X.txt``; the upload's size."""
    image = cv2.imread(str(path))
    if image is None:
        raise RuntimeError(f"cannot read {path}")
    height, width = image.shape[:2]
    cropped = image[0:height, arguments.left : width]
    ok, encoded = cv2.imencode(".jpg", cropped, [cv2.IMWRITE_JPEG_QUALITY, arguments.quality])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    response = requests.post(
        arguments.endpoint,
        files={"file": (path.stem + ".jpg", encoded.tobytes(), "image/jpeg")},
        data=_fields("JPG"),
        headers={"apikey": arguments.api_key},
        timeout=REQUEST_TIMEOUT,
    )
    response.raise_for_status()
    path.with_name(path.name + ".txt").write_text(_text_of(response.json()), encoding="utf-8")
    return len(encoded)


def _images(folder: Path) -> Iterator[Path]:
    for name in sorted(os.listdir(folder)):
        if name.lower().endswith(IMAGE_SUFFIXES):
            yield folder / name


def _summary(sizes: Sequence[int]) -> str:
    return f"done {len(sizes)} {sum(sizes)} {max(sizes, default=0)}"


def seed_loop(arguments: argparse.Namespace) -> int:
    print("ready", flush=True)
    for line in sys.stdin:
        sizes = [_seed_one(path, arguments) for path in _images(Path(line.strip()))]
        print(_summary(sizes), flush=True)
    return 0


def seed_once(arguments: argparse.Namespace) -> int:
    paths = [
        image
        for given in arguments.paths
        for image in (_images(given) if given.is_dir() else [given])
    ]
    print(_summary([_seed_one(path, arguments) for path in paths]), flush=True)
    return 0


def _post(session: requests.Session, endpoint: str, name: str, data: bytes) -> requests.Response:
    """One file's bytes posted as ocrwatch posts them (the session carries the key)."""
    filetype = _filetype(data)
    response = session.post(
        endpoint,
        files={"file": (name, data, MIME[filetype])},
        data=_fields(filetype),
        timeout=REQUEST_TIMEOUT,
    )
    response.raise_for_status()
    return response


def _session(api_key: str) -> requests.Session:
    session = requests.Session()
    session.headers["apikey"] = api_key
    return session


def _post_all(
    arguments: argparse.Namespace, pending: list[tuple[str, bytes]], lock: threading.Lock
) -> None:
    """Post uploads taken from ``pending`` over one kept-alive session until none is left."""
    session = _session(arguments.api_key)
    while True:
        with lock:
            if not pending:
                return
            name, data = pending.pop()
        _post(session, arguments.endpoint, name, data)


def bare_client(arguments: argparse.Namespace) -> int:
    print("ready", flush=True)
    for line in sys.stdin:
        uploads = [(path.name, path.read_bytes()) for path in sorted(Path(line.strip()).iterdir())]
        pending = list(reversed(uploads))
        lock = threading.Lock()
        threads = [
            threading.Thread(target=_post_all, args=(arguments, pending, lock))
            for _ in range(arguments.threads)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"done {len(uploads)} {time.perf_counter() - started:.4f}", flush=True)
    return 0


# --------------------------------------------------------------------------
# Watchers


class _Reader:
    """The OCR call and sidecars shared by both watcher policies."""

    def __init__(self, endpoint: str, api_key: str) -> None:
        self.endpoint = endpoint
        self.session = _session(api_key)

    def process(self, path: Path) -> None:
        response = _post(self.session, self.endpoint, path.name, path.read_bytes())
        text = _text_of(response.json())
        _write_durably(path.with_name(path.name + ".txt"), text.encode())
        _write_durably(path.with_name(path.name + ".json"), response.content)


def _candidate(raw: bytes | str) -> Path | None:
    path = Path(os.fsdecode(raw))
    if path.name.startswith(".") or not path.name.lower().endswith(IMAGE_SUFFIXES):
        return None
    return path


def _event_handler(on_event: Callable[[FileSystemEvent], None]) -> FileSystemEventHandler:
    """A watchdog handler that passes every event to ``on_event``."""
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            on_event(event)

    return Handler()


class _StabilityHandler:
    """Notes the time of the last event for each image; the main loop decides when it is stable."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed: dict[Path, float] = {}

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        raw = getattr(event, "dest_path", "") or event.src_path
        path = _candidate(raw)
        if path is not None and event.event_type != "deleted":
            with self.lock:
                self.changed[path] = time.monotonic()


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def watch_stability(arguments: argparse.Namespace, reader: _Reader, stop: threading.Event) -> None:
    from watchdog.observers import Observer

    handler = _StabilityHandler()
    observer = Observer()
    observer.schedule(_event_handler(handler.on_any_event), str(arguments.folder), recursive=False)
    observer.start()
    print("ready", flush=True)
    known: dict[Path, tuple[float, tuple[int, int] | None]] = {}
    while not stop.wait(STABILITY_CHECK_SECONDS):
        with handler.lock:
            events, handler.changed = handler.changed, {}
        now = time.monotonic()
        for path, when in events.items():
            known[path] = (when, _stat_key(path))
        for path, (since, key) in list(known.items()):
            current = _stat_key(path)
            if current is None:
                del known[path]
            elif current != key:
                known[path] = (now, current)
            elif now - since >= arguments.stability_seconds:
                del known[path]
                reader.process(path)
    observer.stop()
    observer.join()


class _OcrmypdfHandler:
    """On *created*, wait for the file to open and decode (1-s retries), then read it; in this thread."""

    def __init__(self, reader: _Reader, arguments: argparse.Namespace) -> None:
        self.reader = reader
        self.arguments = arguments

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type != "created":
            return
        path = _candidate(event.src_path)
        if path is None:
            return
        from PIL import Image, UnidentifiedImageError

        for _ in range(self.arguments.retries):
            try:
                with Image.open(path) as image:
                    image.load()
            except (OSError, SyntaxError, ValueError, UnidentifiedImageError):
                time.sleep(self.arguments.retry_seconds)
                continue
            self.reader.process(path)
            return


def watch_ocrmypdf(arguments: argparse.Namespace, reader: _Reader, stop: threading.Event) -> None:
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    # OCR_USE_POLLING picks watchdog's PollingObserver with its default 1-s interval.
    observer = PollingObserver() if arguments.policy == "ocrmypdf-poll" else Observer()
    handler = _OcrmypdfHandler(reader, arguments)
    observer.schedule(_event_handler(handler.on_any_event), str(arguments.folder), recursive=False)
    observer.start()
    print("ready", flush=True)
    stop.wait()
    observer.stop()
    observer.join()


def watch(arguments: argparse.Namespace) -> int:
    import io

    import numpy as np
    from PIL import Image

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reader = _Reader(arguments.endpoint, arguments.api_key)
    # Pillow's and OpenCV's first decode loads codecs; do it before saying ready.
    ok, encoded = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    with Image.open(io.BytesIO(encoded.tobytes())) as image:
        image.load()
    if arguments.policy == "stability":
        watch_stability(arguments, reader, stop)
    else:
        watch_ocrmypdf(arguments, reader, stop)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines")
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser("seed", help="the seed's single-threaded crop, encode, post loop")
    seed.add_argument("--endpoint", required=True)
    seed.add_argument("--api-key", required=True)
    seed.add_argument("--left", type=int, default=400)
    seed.add_argument("--quality", type=int, default=90)
    seed.set_defaults(handler=seed_loop)
    single = commands.add_parser(
        "seed-once", help="the seed's crop, encode, post for the given images, then exit"
    )
    single.add_argument("--endpoint", required=True)
    single.add_argument("--api-key", required=True)
    single.add_argument("--left", type=int, default=400)
    single.add_argument("--quality", type=int, default=90)
    single.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    single.set_defaults(handler=seed_once)
    bare = commands.add_parser("bare", help="pre-encoded uploads posted from N threads")
    bare.add_argument("--endpoint", required=True)
    bare.add_argument("--api-key", required=True)
    bare.add_argument("--threads", type=int, required=True)
    bare.set_defaults(handler=bare_client)
    watcher = commands.add_parser(
        "watch", help="a folder watcher with another project's readiness policy"
    )
    watcher.add_argument(
        "--policy", choices=("stability", "ocrmypdf", "ocrmypdf-poll"), required=True
    )
    watcher.add_argument("--folder", type=Path, required=True)
    watcher.add_argument("--endpoint", required=True)
    watcher.add_argument("--api-key", required=True)
    watcher.add_argument("--stability-seconds", type=float, default=5.0)
    watcher.add_argument("--retry-seconds", type=float, default=1.0)
    watcher.add_argument("--retries", type=int, default=5)
    watcher.set_defaults(handler=watch)
    arguments = parser.parse_args(argv)
    code: int = arguments.handler(arguments)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
