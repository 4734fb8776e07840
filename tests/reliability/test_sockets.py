"""What a fuzzer of JSON bodies misses, sent over raw sockets to a real server.

Every case ends with a 4xx or a closed connection, never a 5xx, within a bound; after each one the
server still answers another client at once. The server's log gets no stack trace from any of them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SEED_ROW
from tests.support import Service, request, runtime_service

BOUND_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    import shutil

    from tests.conftest import FIXTURE_STORE

    store = tmp_path_factory.mktemp("sockets") / "store"
    shutil.copytree(FIXTURE_STORE, store)
    service = runtime_service(store, MODEL_WATCH_SECONDS="0", LOG_LEVEL="INFO").start()
    yield service
    service.stop()
    log = service.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def _exchange(port: int, raw: bytes, *, close_after_send: bool = False, wait: float = BOUND_S) -> bytes:
    """Send ``raw``; return what the server answered (b"" for a closed connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(raw)
        if close_after_send:
            return b""
        chunks = []
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def _status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _post(path: str, body: bytes, extra: bytes = b"", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
    return head.encode() + extra + b"\r\n" + body


def _responsive(server: Service) -> None:
    started = time.monotonic()
    status, body = request(server.port, "POST", "/predict", SEED_ROW, timeout=5)
    assert status == 200 and body["score"] > 0
    assert time.monotonic() - started < 2, "the server kept another client waiting"


@pytest.mark.parametrize("path", ["/predict", "/v2/models/ml-matching/infer"])
def test_a_body_cut_short_is_dropped_quietly(server: Service, path: str) -> None:
    assert _exchange(server.port, _post(path, b'{"brandFit": 0.5', length=1000), close_after_send=True) == b""
    time.sleep(0.3)
    _responsive(server)
    log = server.log.read_text()
    assert f"POST {path}: the client disconnected before sending its whole body" in log
    assert "Traceback" not in log, "v2 logged it as an internal error"


def test_a_content_length_larger_than_the_body_does_not_hold_others_up(server: Service) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(_post("/predict", json.dumps(SEED_ROW).encode(), length=100_000))
        _responsive(server)  # while that request waits for the rest of its body
    _responsive(server)


def test_a_chunked_body_over_the_limit_is_413(server: Service) -> None:
    head = b"POST /predict/batch HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(200))  # 12.5 MiB > 10 MiB
    answer = _exchange(server.port, head + chunks + b"0\r\n\r\n")
    assert _status(answer) == 413 or answer == b"", answer[:200]
    if answer:
        assert b"MAX_BODY_BYTES" in answer
    _responsive(server)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/predict", b"[" * 1000 + b"]" * 1000, 400),
        ("/predict/batch", b'{"instances": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400),
        ("/predict", b"[" * 100_000 + b"]" * 100_000, 400),
        ("/predict", b'{"brandFit": "' + b"x" * (5 << 20) + b'"}', 400),
        ("/predict", b'{"brandFit": "\xff\xfe\xfd"}', 400),
        ("/predict", json.dumps(SEED_ROW).encode()[:-1] + b', "brandFit": "\xc3\x28"}', 400),
        ("/predict", b"\xef\xbb\xbf" + json.dumps(SEED_ROW).encode(), 400),
        ("/predict", b"\x00" * 1000, 400),
    ],
    ids=["1000 nested arrays", "nested batch", "100000 nested arrays", "a 5 MB string", "invalid UTF-8",
         "invalid UTF-8 after a valid row", "a BOM", "NUL bytes"],
)  # fmt: skip
def test_hostile_bodies_get_a_4xx(server: Service, path: str, body: bytes, status: int) -> None:
    answer = _exchange(server.port, _post(path, body))
    assert _status(answer) == status, answer[:300]
    detail = json.loads(answer.partition(b"\r\n\r\n")[2])["detail"]
    assert detail and len(detail) < 2000, "the detail names the problem without echoing the body"
    _responsive(server)


def test_a_10_mb_string_is_over_the_body_limit(server: Service) -> None:
    answer = _exchange(server.port, _post("/predict", b'{"brandFit": "' + b"x" * (11 << 20) + b'"}'))
    assert _status(answer) == 413 or answer == b""
    _responsive(server)


def test_a_200_kb_header_is_431(server: Service) -> None:
    raw = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 200_000 + b"\r\n\r\n"
    answer = _exchange(server.port, raw)
    assert _status(answer) == 431, answer[:200]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"] == "request_header_fields_too_large"
    assert body["detail"].endswith("more than MAX_HEADER_BYTES (16384)")
    _responsive(server)


def test_a_duplicate_key_is_scored_with_its_last_value(server: Service) -> None:
    # Documented: the last value wins, as JSON.parse decides in the Node client.
    text = json.dumps({**SEED_ROW, "brandFit": 0.0})[:-1] + ', "brandFit": 0.8}'
    once = request(server.port, "POST", "/predict", SEED_ROW)[1]
    answer = _exchange(server.port, _post("/predict", text.encode()))
    assert _status(answer) == 200
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["score"] == once["score"]


def test_many_slow_clients_do_not_hold_others_up(server: Service) -> None:
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def slow() -> None:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sockets.append(s)
        for byte in b"POST /predict HTTP/1.1\r\nHost: t\r\n":
            if stop.is_set():
                return
            s.sendall(bytes([byte]))
            time.sleep(0.05)

    threads = [threading.Thread(target=slow, daemon=True) for _ in range(100)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for _ in range(5):
            _responsive(server)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for s in sockets:
            s.close()
    _responsive(server)


def test_the_log_gets_no_stack_trace(server: Service, tmp_path: Path) -> None:
    # Checked once more here (and for the whole module at teardown).
    assert "Traceback" not in server.log.read_text()
