"""The trainer's side of the ledger: rows and outcomes stored per second, SQLite vs PostgreSQL, and a
100,000-prediction replay whose outcomes arrive in random order, 10 % before their prediction.

    python bench/ledger.py                  # both databases (PostgreSQL when its binaries are installed)
    python bench/ledger.py --rows 20000     # a shorter replay

Each database runs behind a real trainer process (``ml-matching trainer``), fed over HTTP as the
runtimes feed it: ``POST /predictions`` in batches of 1,000 rows, ``POST /outcomes`` in batches of
1,000 (by ``predictionId``, and, for outcomes/s, with features as the backend sends them today).
The replay then checks every stored outcome against the ledger row it joined (same features, the
outcome that was sent): the join rate and the wrong joins are counted, not assumed. PostgreSQL is a
cluster made in a temporary folder (tests/postgres.py), ``fsync=off`` as in the tests.

Writes ``bench/results-ledger.json`` and prints a Markdown table. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import procs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "ledger"
sys.path.insert(0, str(ROOT))  # tests.postgres: the same throwaway cluster the tests use

from ml_matching.contract import default_feature_set  # noqa: E402
from ml_matching.contract.assignment import HASH_VERSION, unit_digest  # noqa: E402
from ml_matching.contract.ids import PredictionIds  # noqa: E402
from ml_matching.contract.ledger import LedgerRow, ShadowScore  # noqa: E402
from tests.postgres import PostgresServer, binaries  # noqa: E402

BATCH = 1000
FIXTURE_STORE = ROOT / "tests" / "fixtures" / "store"  # two versions of the default features
VERSIONS = {"control": "20260101_000000", "candidate": "20260102_000000"}


def rows(n: int, seed: int = 1) -> list[LedgerRow]:
    """``n`` ledger rows as a runtime under a 50 % experiment with one shadow records them."""
    rng = random.Random(seed)
    ids = PredictionIds()
    out = []
    for i in range(n):
        features = {k: round(v, 6) for k, v in _features(rng).items()}
        arm = "candidate" if rng.random() < 0.5 else "control"
        unit = unit_digest("exp-bench", f"brand-{i}").hex()
        out.append(
            LedgerRow(
                ids(),
                "2026-11-30T12:00:00.000Z",
                VERSIONS[arm],
                rng.random(),
                features,
                "exp-bench",
                1,
                arm,
                5000,
                unit,
                HASH_VERSION,
                shadow=(ShadowScore("shadow", rng.random()),),
            )
        )
    return out


def _post(port: int, path: str, body: bytes) -> dict[str, Any]:
    status, answer = procs.request(port, "POST", path, body)
    if status != 200:
        raise RuntimeError(f"{path}: {status} {answer[:300]!r}")
    return dict(json.loads(answer))


def _trainer(database: str, name: str) -> procs.Server:
    port = procs.free_port()
    store = WORK / f"store-{name}"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(FIXTURE_STORE, store)  # the trainer checks each row against its version's features
    env = {
        **os.environ, "MODELS_DIR": str(store), "ML_TRAINER_PORT": str(port), "ML_TRAINER_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING", "OUTCOMES_DB": database, "RETRAIN_EVERY": "0", "MAX_BATCH_ROWS": str(BATCH),
    }  # fmt: skip
    return procs.Server(
        name, [sys.executable, "-m", "ml_matching", "trainer"], env, port, WORK / f"{name}.log"
    )


def replay(port: int, ledger: list[LedgerRow], seed: int = 2) -> dict[str, Any]:
    """Post the rows and their outcomes (random order, 10 % of outcomes first); time each part."""
    import msgspec

    rng = random.Random(seed)
    truth = {r.prediction_id: rng.random() < 0.3 for r in ledger}
    early = set(rng.sample(sorted(truth), len(truth) // 10))
    order = list(truth)
    rng.shuffle(order)
    first = [p for p in order if p in early]
    rest = [p for p in order if p not in early]
    encode = msgspec.json.encode

    def outcomes(ids: list[str]) -> float:
        t0 = time.perf_counter()
        for i in range(0, len(ids), BATCH):
            items = [{"predictionId": p, "outcome": truth[p]} for p in ids[i : i + BATCH]]
            _post(port, "/outcomes", encode({"outcomes": items}))
        return time.perf_counter() - t0

    early_s = outcomes(first)
    t0 = time.perf_counter()
    joined = 0
    for i in range(0, len(ledger), BATCH):
        joined += _post(port, "/predictions", encode({"rows": ledger[i : i + BATCH]}))["joined"]
    ledger_s = time.perf_counter() - t0
    late_s = outcomes(rest)
    return {
        "rows": len(ledger),
        "ledger_rows_per_s": len(ledger) / ledger_s,
        "outcomes_by_id_per_s": len(rest) / late_s,
        "early_outcomes": len(first),
        "joined_on_arrival": joined,
        "early_s": early_s,
        "truth": truth,
    }


def feature_outcomes_per_s(port: int, n: int, seed: int = 3) -> float:
    """Outcomes with features (today's backend call), in batches of 1,000."""
    import msgspec

    rng = random.Random(seed)
    fs = default_feature_set()
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        items = [
            {
                "id": f"o-{seed}-{j}",
                "features": {f.name: rng.uniform(f.min, f.max) for f in fs.features},
                "outcome": rng.random() < 0.3,
            }
            for j in range(i, min(i + BATCH, n))
        ]
        _post(port, "/outcomes", msgspec.json.encode({"outcomes": items}))
    return n / (time.perf_counter() - t0)


def _features(rng: random.Random) -> dict[str, float]:
    return {f.name: rng.uniform(f.min or 0.0, f.max or 1.0) for f in default_feature_set().features}


JOINED = "SELECT prediction_id, features, outcome FROM outcomes WHERE prediction_id IS NOT NULL"


def check_sqlite(path: Path, ledger: list[LedgerRow], truth: dict[str, bool]) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        stored = {pid: (json.loads(f), bool(o)) for pid, f, o in db.execute(JOINED)}
    return _compare(stored, ledger, truth)


def check_postgres(url: str, ledger: list[LedgerRow], truth: dict[str, bool]) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as db:
        stored = {pid: (json.loads(f), bool(o)) for pid, f, o in db.execute(JOINED)}
    return _compare(stored, ledger, truth)


def _compare(
    stored: dict[str, tuple[dict[str, float], bool]], ledger: list[LedgerRow], truth: dict[str, bool]
) -> dict[str, int]:
    wrong = sum(
        1
        for r in ledger
        if r.prediction_id in stored and stored[r.prediction_id] != (r.features, truth[r.prediction_id])
    )
    return {
        "joined": len(stored),
        "wrong": wrong,
        "missing": sum(r.prediction_id not in stored for r in ledger),
    }


def run_one(name: str, database: str, ledger: list[LedgerRow], check: Any) -> dict[str, Any]:
    server = _trainer(database, name)
    procs.start(server, ROOT)
    try:
        result = replay(server.port, ledger)
        result["feature_outcomes_per_s"] = feature_outcomes_per_s(server.port, 20_000)
    finally:
        procs.stop(server)
    truth = result.pop("truth")
    result.update(check(ledger, truth))
    result["join_rate"] = result["joined"] / len(ledger)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=HERE / "results-ledger.json")
    args = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    ledger = rows(args.rows)
    results: dict[str, Any] = {"command": " ".join(["python", "bench/ledger.py", *sys.argv[1:]])}
    db = WORK / "ledger.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    results["sqlite"] = run_one(
        "sqlite", str(db), ledger, lambda ledger, truth: check_sqlite(db, ledger, truth)
    )
    found = binaries()
    if found is None:
        print(
            "PostgreSQL is not installed: its column is skipped (apt-get install postgresql)", file=sys.stderr
        )
    else:
        server = PostgresServer(found).start()
        try:
            url = server.database()
            results["postgresql"] = run_one(
                "postgresql", url, ledger, lambda ledger, truth: check_postgres(url, ledger, truth)
            )
        finally:
            server.stop()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    names = [n for n in ("sqlite", "postgresql") if n in results]
    lines = [
        "| trainer, over HTTP, batches of 1,000 | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    rows_ = [
        ("ledger rows stored / s", "ledger_rows_per_s", "{:,.0f}"),
        ("outcomes by predictionId / s", "outcomes_by_id_per_s", "{:,.0f}"),
        ("outcomes with features / s", "feature_outcomes_per_s", "{:,.0f}"),
        ("replay: predictions", "rows", "{:,}"),
        ("replay: outcomes sent before their prediction", "early_outcomes", "{:,}"),
        ("replay: joined when the prediction arrived", "joined_on_arrival", "{:,}"),
        ("replay: join rate", "join_rate", "{:.2%}"),
        ("replay: outcomes joined to the wrong prediction", "wrong", "{:,}"),
    ]
    for label, key, fmt in rows_:
        lines.append(f"| {label} | " + " | ".join(fmt.format(results[n][key]) for n in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
