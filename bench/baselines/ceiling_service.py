"""The framework ceiling for the benchmarks: Litestar that validates the request and answers a constant.

It does everything the runtime's ``POST /predict`` does except scoring: the same Litestar handler
idiom as ``ml_matching/runtime/routes.py`` (an ``async`` handler taking ``RawBody``, the Content-Type check, a
reused strict msgspec decoder into a Struct of the 19 bounded floats that forbids unknown fields,
bytes returned in a ``Response``), the same body-size limit, and a response of the same shape that
was encoded once at import. The runtime's requests/s divided by this one's is the share of the
framework's best that the runtime keeps.

Bench-only; never imported by the runtime. Environment: ``BENCH_HOST``, ``BENCH_PORT``.
Run: ``python bench/baselines/ceiling_service.py``.
"""

from __future__ import annotations

from bench_server import serve
from ceiling_app import make_app
from ceiling_parts import RESPONSE

app = make_app("ceiling", lambda row: RESPONSE)


if __name__ == "__main__":
    serve(app)
