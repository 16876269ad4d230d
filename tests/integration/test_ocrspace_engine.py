"""The ocr.space engine against the local protocol-checking server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ocrwatch.apikey import ApiKey, KeyHolder
from ocrwatch.config import OcrSpaceConfig
from ocrwatch.engines.base import OcrRequest
from ocrwatch.engines.ocrspace.client import OcrSpaceEngine, upload_name
from ocrwatch.errors import (
    BadInputError,
    Interrupted,
    InvalidKeyError,
    OcrError,
    RateLimitError,
    TransientError,
)
from ocrwatch.ratelimit import RequestGate
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.render import page

KEY = "TEST-KEY"


def gray_page(
    words: str = "Hello ocrwatch world", size: tuple[int, int] = (900, 200)
) -> np.ndarray:
    image, _ = page([words], size=size, font_size=48)
    return np.asarray(image.convert("L")).copy()


def engine_for(*urls: str, key: str = KEY, **options: object) -> OcrSpaceEngine:
    config = OcrSpaceConfig(endpoint=urls, **options)
    return OcrSpaceEngine(config, ApiKey(key, "test"), backoff_base=0.01)


def test_request_follows_the_protocol_and_reads_real_text() -> None:
    """The server finds no protocol problem, the key is in the header, and the text comes back."""
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        engine = engine_for(fake.url)
        result = engine.recognize(OcrRequest(image=gray_page(), name="hello", overlay=True))
        engine.close()
        (request,) = fake.requests
    assert () == request.problems
    assert KEY == request.headers["apikey"]
    assert "hello.jpg" == request.filename
    assert {
        "language": "eng",
        "isOverlayRequired": "true",
        "detectOrientation": "true",
        "scale": "false",
        "isTable": "false",
        "OCREngine": "1",
        "filetype": "JPG",
    } == request.form
    assert "Hello ocrwatch world" in result.text
    assert [] != list(result.pages[0].words)


def test_a_prepared_request_holds_the_upload_not_the_pixels() -> None:
    """prepare() fits without sending; the pixels and original can go; finish() sends that upload."""
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        engine = engine_for(fake.url)
        prepared = engine.prepare(OcrRequest(image=gray_page(), name="later", original=b"bytes"))
        assert [] == fake.requests
        assert prepared.upload is not None and prepared.request.original is None
        with pytest.raises(RuntimeError, match="released"):
            prepared.request.pixels()
        result = engine.finish(prepared)
        engine.close()
        (request,) = fake.requests
    assert prepared.upload is result.upload
    assert "Hello ocrwatch world" in result.text


def test_upload_names_are_ascii_with_the_right_extension() -> None:
    """Spaces, unicode and leading dashes do not reach the multipart header."""
    assert "Rechnung_M_rz_2026.jpg" == upload_name("Rechnung März 2026", "jpg")
    assert "scan.png" == upload_name("-scan", "png")
    assert "image.jpg" == upload_name("...", "jpg")


def test_word_boxes_map_back_through_a_downscaled_upload() -> None:
    """When the upload had to shrink, boxes come back in the caller's pixels."""
    image = np.full((3000, 2400), 255, np.uint8)
    text, _ = page(["MARKER"], size=(700, 160), font_size=90)
    image[1400:1560, 900:1600] = np.asarray(text.convert("L"))
    rows, columns = np.nonzero(image < 128)
    ink_left, ink_top = int(columns.min()), int(rows.min())
    ink_width = int(columns.max()) - ink_left + 1
    noise = np.random.default_rng(1).integers(0, 40, image.shape, dtype=np.uint8)
    image = np.where(image > 128, 255 - noise, image).astype(np.uint8)
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        engine = engine_for(fake.url, max_upload_bytes=200_000)
        result = engine.recognize(OcrRequest(image=image, name="big", overlay=True))
        engine.close()
    assert result.upload is not None and result.upload.scale < 1.0
    word = next(w for w in result.pages[0].words if "MARKER" in w.text)
    # Two upload pixels of slack for the engine's own box edges.
    tolerance = 2 / result.upload.scale + 1
    assert abs(word.left - ink_left) < tolerance
    assert abs(word.top - ink_top) < tolerance
    assert abs(word.width - ink_width) < 2 * tolerance


def test_transient_failures_are_retried_then_succeed() -> None:
    """A 503 and a timeout answer are retried; the third try succeeds."""
    with FakeOcrSpace(
        mode="text", text="ok", api_key=KEY, script=["http503", "timeout_exit6"]
    ) as fake:
        engine = engine_for(fake.url, attempts=3)
        result = engine.recognize(OcrRequest(image=gray_page(), name="flaky"))
        engine.close()
        assert 3 == len(fake.requests)
    assert ("ok\n" in result.text or result.text.startswith("ok")) and 3 == result.attempts


def test_failover_to_the_next_endpoint() -> None:
    """When the first endpoint keeps failing, the second one answers."""
    with (
        FakeOcrSpace(mode="text", text="from b", api_key=KEY, faults={"http502": 1.0}) as bad,
        FakeOcrSpace(mode="text", text="from b", api_key=KEY) as good,
    ):
        engine = engine_for(bad.url, good.url, attempts=2)
        result = engine.recognize(OcrRequest(image=gray_page(), name="failover"))
        engine.close()
        assert (2, 1) == (len(bad.requests), len(good.requests))
    assert good.url == result.endpoint


def test_the_proxy_named_by_the_environment_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY is honoured (read once, when the engine starts): the fake server acts as the proxy."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with FakeOcrSpace(mode="text", text="through the proxy", api_key=KEY) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        # A name that resolves nowhere: only a proxy can carry the request.
        engine = engine_for("http://ocr.invalid/parse/image", attempts=1)
        monkeypatch.delenv("HTTP_PROXY")
        first = engine.recognize(OcrRequest(image=gray_page(), name="proxied"))
        second = engine.recognize(OcrRequest(image=gray_page(), name="proxied-again"))
        engine.close()
        assert 2 == len(proxy.requests)
    assert ["through the proxy"] * 2 == [first.text.strip(), second.text.strip()]


def test_transient_exhaustion_says_how_often_it_tried() -> None:
    """After every attempt fails the error is transient and counts the requests."""
    with FakeOcrSpace(mode="text", api_key=KEY, faults={"http500": 1.0}) as fake:
        engine = engine_for(fake.url, attempts=3)
        with pytest.raises(TransientError) as caught:
            engine.recognize(OcrRequest(image=gray_page(), name="down"))
        engine.close()
        assert 3 == len(fake.requests)
    assert 3 == caught.value.attempts
    assert "gave up after 3 attempts on 1 endpoint(s)" in str(caught.value)


@pytest.mark.parametrize("fault", ["input_exit3", "input_exit99", "http400_e501"])
def test_bad_input_is_never_retried(fault: str) -> None:
    """Input errors fail at once: one request, no quota burnt on retries."""
    with FakeOcrSpace(mode="text", api_key=KEY, faults={fault: 1.0}) as fake:
        engine = engine_for(fake.url, attempts=3)
        with pytest.raises(BadInputError):
            engine.recognize(OcrRequest(image=gray_page(), name="bad"))
        engine.close()
        assert 1 == len(fake.requests)


@pytest.mark.parametrize("fault", ["invalid_key_legacy", "invalid_key_e555"])
def test_invalid_key_blocks_the_gate(fault: str) -> None:
    """A rejected key raises at once and blocks further requests."""
    with FakeOcrSpace(mode="text", api_key=KEY, faults={fault: 1.0}) as fake:
        engine = engine_for(fake.url)
        with pytest.raises(InvalidKeyError):
            engine.recognize(OcrRequest(image=gray_page(), name="key"))
        assert engine.gate.state().blocked
        engine.close()
        assert 1 == len(fake.requests)


def test_a_rejection_of_a_key_replaced_meanwhile_does_not_block_the_new_key() -> None:
    """The old key's rejection arriving after a reload fails that try only; the new key keeps working."""
    with FakeOcrSpace(mode="text", api_key=KEY, latency=0.5) as fake:
        keys = KeyHolder(ApiKey("OLD-WRONG-KEY", "test"))
        engine = OcrSpaceEngine(OcrSpaceConfig(endpoint=(fake.url,)), keys, backoff_base=0.01)
        errors: list[BaseException] = []

        def send_with_old_key() -> None:
            try:
                engine.recognize(OcrRequest(image=gray_page(), name="old"))
            except InvalidKeyError as error:
                errors.append(error)

        sender = threading.Thread(target=send_with_old_key)
        sender.start()
        while fake.in_flight == 0:
            time.sleep(0.005)
        keys.replace(ApiKey(KEY, "test"))  # what a reload does while the request is out
        sender.join(10)
        assert 1 == len(errors) and not engine.gate.state().blocked
        result = engine.recognize(OcrRequest(image=gray_page(), name="new"))
        engine.close()
    assert result.text
    assert ["OLD-WRONG-KEY", KEY] == [request.headers["apikey"] for request in fake.requests]


@pytest.mark.parametrize("fault", ["rate_limit_json", "rate_limit_text"])
def test_rate_limit_pauses_for_the_named_window(fault: str) -> None:
    """The 403 sentence pauses the shared gate for its S seconds."""
    gate = RequestGate(None)
    with FakeOcrSpace(mode="text", api_key=KEY, faults={fault: 1.0}) as fake:
        engine = OcrSpaceEngine(
            OcrSpaceConfig(endpoint=(fake.url,)), ApiKey(KEY, "test"), gate=gate
        )
        before = time.time()
        with pytest.raises(RateLimitError) as caught:
            engine.recognize(OcrRequest(image=gray_page(), name="rate"))
        engine.close()
    assert (10, 600) == (caught.value.limit, caught.value.window)
    paused = gate.state().paused_until
    assert paused is not None and before + 590 < paused < time.time() + 610


@pytest.mark.parametrize(
    "fault", ["reset_mid_body", "truncated_json", "malformed_json", "html_error"]
)
def test_broken_answers_are_transient(fault: str) -> None:
    """Resets, truncated or malformed JSON and HTML pages are retried, then reported as transient."""
    with FakeOcrSpace(mode="text", api_key=KEY, faults={fault: 1.0}) as fake:
        engine = engine_for(fake.url, attempts=2)
        with pytest.raises(TransientError):
            engine.recognize(OcrRequest(image=gray_page(), name="broken"))
        engine.close()
        assert 2 == len(fake.requests)


def test_read_timeout_is_transient_and_bounded() -> None:
    """A server slower than the timeout costs about timeout x attempts, not forever."""
    with FakeOcrSpace(mode="text", api_key=KEY, faults={"slow": 1.0}, slow_seconds=5) as fake:
        engine = engine_for(fake.url, attempts=2, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            engine.recognize(OcrRequest(image=gray_page(), name="slow"))
        elapsed = time.monotonic() - started
        engine.close()
    assert "within the timeout" in str(caught.value.__cause__ or caught.value) or "timeout" in str(
        caught.value
    )
    assert elapsed < 4.0


def test_stop_interrupts_a_rate_limit_wait() -> None:
    """Shutting down ends a wait at the gate with Interrupted, sending nothing."""
    with FakeOcrSpace(mode="text", api_key=KEY) as fake:
        engine = engine_for(fake.url)
        engine.gate.pause(600, "test pause")
        errors: list[BaseException] = []

        def call() -> None:
            try:
                engine.recognize(OcrRequest(image=gray_page(), name="paused"))
            except OcrError as error:
                errors.append(error)

        thread = threading.Thread(target=call)
        thread.start()
        engine.close()
        thread.join(10)
        assert [] == fake.requests
    assert 1 == len(errors) and isinstance(errors[0], Interrupted)
