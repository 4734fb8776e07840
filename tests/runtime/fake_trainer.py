"""A trainer's ``POST /predictions``, answered as the real one answers it, with the failures a runtime meets."""

from __future__ import annotations

import http.server
import threading
from typing import Any, ClassVar

import msgspec

from ml_matching.contract.ledger import LedgerBatch, LedgerRow


class FakeTrainer:
    """``POST /predictions`` answered as the trainer answers it (200, ``{"stored", "duplicates",
    "joined"}``), keeping each body it took. With ``break_first`` (a status), its first answer breaks off
    mid-body, as from a trainer killed while it answers or a proxy's error page
    (``http.client.IncompleteRead``, which is not an ``OSError``). With ``max_body``, a larger body
    gets the trainer's 413; with ``status``, every request gets that error (a proxy's 401, say), or
    the first ``times`` requests (a trainer whose disk is full answers 507, then takes rows again)."""

    ERRORS: ClassVar[dict[int, tuple[str, str]]] = {
        401: ("unauthorized", "missing or wrong bearer token"),
        507: ("insufficient_storage", "/data/outcomes.sqlite: database or disk is full"),
    }

    def __init__(
        self,
        break_first: int | None = None,
        max_body: int | None = None,
        status: int | None = None,
        times: int | None = None,
    ) -> None:
        self.bodies: list[bytes] = []
        self.posts = 0
        self._seen: set[str] = set()
        self._break = break_first  # the status of the answer that breaks off
        self._max_body = max_body
        self._status = status
        self._times = times
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        trainer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                trainer.posts += 1
                if trainer._status is not None and (
                    trainer._times is None or trainer.posts <= trainer._times
                ):
                    self._error(trainer._status, *trainer.ERRORS[trainer._status])
                    return
                if trainer._max_body is not None and len(body) > trainer._max_body:
                    detail = f"request body is larger than MAX_BODY_BYTES ({trainer._max_body} bytes)"
                    self._error(413, "request_entity_too_large", detail)
                    return
                if trainer._break is not None:
                    status, trainer._break = trainer._break, None
                    self._answer(b'{"detail":', length=100, status=status)
                    return
                trainer.bodies.append(body)
                ids = [r.prediction_id for r in msgspec.json.decode(body, type=LedgerBatch).rows]
                new = set(ids) - trainer._seen
                trainer._seen |= new
                self._answer(
                    msgspec.json.encode({"stored": len(new), "duplicates": len(ids) - len(new), "joined": 0})
                )

            def _error(self, status: int, error: str, detail: str) -> None:
                self._answer(
                    msgspec.json.encode({"statusCode": status, "error": error, "detail": detail}),
                    status=status,
                )

            def _answer(self, body: bytes, length: int | None = None, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def recover(self) -> None:
        """Take rows from now on (after answering ``status``)."""
        self._status = None

    def rows(self) -> list[LedgerRow]:
        """Every row it took, in the order it took them (a resent row once)."""
        seen: dict[str, LedgerRow] = {}
        for body in self.bodies:
            for row in msgspec.json.decode(body, type=LedgerBatch).rows:
                seen.setdefault(row.prediction_id, row)
        return list(seen.values())
