"""``ml-matching experiment start|list|show|pause|resume|stop``: the trainer's experiments API from a shell.

It talks HTTP to a running trainer (``--trainer``, else ``ML_TRAINER_URL``), with the admin token of
``ML_SERVICE_ADMIN_TOKEN`` for the changes; it needs neither the train extra nor the database. An
error answer is printed as the trainer words it, and exits 1 (2 for bad input).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ml_matching.contract import InvalidInput, MLMatchingError
from ml_matching.contract.commandline import Handler
from ml_matching.contract.settings import token as bearer_token
from ml_matching.contract.store import atomic_write
from ml_matching.trainer.plan import parse_primary, parse_ramp

DEFAULT_TRAINER = "http://localhost:8001"
Printer = Callable[[Any], None]


def trainer_options(p: argparse.ArgumentParser) -> None:
    """``--trainer`` and ``--json``, shared by every command that calls the trainer's API."""
    p.add_argument(
        "--trainer",
        type=trainer_url,
        default=os.environ.get("ML_TRAINER_URL", DEFAULT_TRAINER),  # argparse checks a default too
        help="the trainer's URL (ML_TRAINER_URL)",
    )
    p.add_argument("--json", action="store_true", help="print the trainer's JSON answer as it is")


def trainer_url(text: str) -> str:
    """An http(s) URL with a host (urllib's "unknown url type" was a traceback)."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"expected the trainer's http(s) URL (--trainer, else ML_TRAINER_URL), such as {DEFAULT_TRAINER}"
        )
    return text.rstrip("/")


def configure(p: argparse.ArgumentParser) -> Handler:
    trainer_options(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    start = actions.add_parser("start", help="start an experiment (one runs at a time)")
    start.add_argument("--name", required=True, help="a name for people (letters, digits, ._-)")
    start.add_argument(
        "--candidate", action="append", default=[], metavar="VERSION:WEIGHT",
        help="a candidate version and its share of units in basis points (1000 = 10 %%); repeatable "
        "(with --ramp: VERSION alone)",
    )  # fmt: skip
    start.add_argument("--control", help="the control version (default: ACTIVE)")
    start.add_argument(
        "--shadow", action="append", default=[], metavar="VERSION", help="a shadow version; repeatable"
    )
    start.add_argument(
        "--horizon-days", type=float, default=30.0, help="how long an outcome may take to arrive"
    )
    start.add_argument("--salt", help="the assignment's salt (default: the experiment's id)")
    actions.add_parser("list", help="every experiment, newest first")
    start.add_argument(
        "--ramp", metavar="WEIGHT[:MIN_SECONDS[:MIN_OUTCOMES]],...",
        help="hand the experiment to the controller: its ramp steps, e.g. "
        "0:3600:200,500:86400:200,5000:0:1000 (weight 0 is a shadow step); then the candidate's weight "
        "comes from the first step",
    )  # fmt: skip
    start.add_argument(
        "--primary", metavar="METRIC[:TEST[:MARGIN[:ALPHA]]]",
        help="with --ramp: the decision's metric (logLoss, brier, successRate), test (nonInferiority, "
        "superiority), margin and alpha, e.g. logLoss:nonInferiority:0.02:0.05",
    )  # fmt: skip
    for name, what in (
        ("show", "an experiment's state and per-arm counts"),
        ("pause", "serve everyone with control, record nothing, until resumed"),
        ("resume", "assign units again"),
        ("stop", "end it: everyone is served by control, for good"),
        ("advance", "a ramp: go to the next step now"),
        ("rollback", "a ramp: the candidate's weight to 0, the experiment stopped, ACTIVE kept"),
        ("promote", "a ramp: ACTIVE becomes the candidate"),
        ("hold", "a ramp: keep the weights until released (safety rollbacks still apply)"),
        ("release", "a ramp held by hand: the controller decides again"),
        ("replay", "recompute every decision of the controller from the ledger and the outcomes"),
        ("report", "write the experiment's HTML report (--out FILE, default EXPERIMENT_ID.html)"),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument("id", help="the experiment's id (see `list`)")
        if name in ("advance", "rollback", "promote", "hold", "release"):
            action.add_argument(
                "--step", type=int,
                help="the ramp step you saw (`show`): refused if it has moved since, so that running "
                "the command again never skips a step",
            )  # fmt: skip
        if name == "report":
            action.add_argument("--out", type=Path, help="where to write the page")
    return _run


def _run(args: argparse.Namespace) -> int:
    trainer = args.trainer.rstrip("/")
    if args.action == "start":
        answer = call("POST", f"{trainer}/experiments", _start_body(args))
    elif args.action == "list":
        answer = call("GET", f"{trainer}/experiments")
    elif args.action == "show":
        answer = call("GET", f"{trainer}/experiments/{args.id}")
    elif args.action == "replay":
        return _replay(call("GET", f"{trainer}/experiments/{args.id}/replay"), args.json)
    elif args.action == "report":
        out = args.out or Path(f"{args.id}.html")
        atomic_write(out, call("GET", f"{trainer}/experiments/{args.id}/report", raw=True))
        print(f"wrote {out}")
        return 0
    else:
        step = getattr(args, "step", None)
        query = f"?step={step}" if step is not None else ""
        answer = call("POST", f"{trainer}/experiments/{args.id}/{args.action}{query}")
    return show(answer, args, _print_list, _print_view)


def show(answer: Any, args: argparse.Namespace, listing: Printer, view: Printer) -> int:
    """Print the trainer's answer: as it is with ``--json``, else the list or the view for people."""
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.action == "list":
        listing(answer)
    else:
        view(answer)
    return 0


def _start_body(args: argparse.Namespace) -> dict[str, Any]:
    candidates = []
    for text in args.candidate:
        version, sep, weight = text.rpartition(":")
        if args.ramp and not sep:  # with a ramp the weight comes from its first step
            candidates.append({"version": text})
            continue
        if not sep or not weight.isdigit():
            raise InvalidInput(f"--candidate {text}: expected VERSION:WEIGHT, e.g. 20260101_000000:1000")
        candidates.append({"version": version, "weight": int(weight)})
    body: dict[str, Any] = {"name": args.name, "candidates": candidates, "shadow": args.shadow}
    body["horizonDays"] = args.horizon_days
    if args.ramp:
        body["ramp"] = msgspec.to_builtins(parse_ramp(args.ramp))
    if args.primary:
        body["primary"] = msgspec.to_builtins(parse_primary(args.primary))
    for key, value in (("control", args.control), ("salt", args.salt)):
        if value is not None:
            body[key] = value
    return body


def _replay(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
    for r in [] if as_json else rows:
        verdict = "identical" if r["identical"] else f"DIFFERS (replayed: {r['replayed']})"
        print(f"{r['seq']:>4}  {r['at']}  {r['kind']:<9} {verdict}")
    same = all(r["identical"] for r in rows)
    if not as_json:
        print(f"{len(rows)} decisions, {'all identical' if same else 'some differ'}")
    return 0 if same else 1


def call(method: str, url: str, body: dict[str, Any] | None = None, raw: bool = False) -> Any:
    """The trainer's JSON answer (``raw``: its bytes); an error answer raised as the trainer words it."""
    headers = {"Accept": "application/json"}
    token = os.environ.get("ML_SERVICE_ADMIN_TOKEN", "").strip()  # as the services read it: a secret
    if token:  # mounted from a file often ends in a line break
        try:
            headers["Authorization"] = f"Bearer {bearer_token(token)}"
        except ValueError as exc:  # the message never holds the token itself
            raise MLMatchingError(f"ML_SERVICE_ADMIN_TOKEN: {exc}") from None
    data = None
    if body is not None or method == "POST":
        data = json.dumps(body or {}).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            return data if raw else json.loads(data)
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except OSError as exc:
        raise MLMatchingError(
            f"cannot reach the trainer at {url}: {exc} (--trainer or ML_TRAINER_URL)"
        ) from None
    except (http.client.HTTPException, ValueError) as exc:  # not HTTP, cut short, or not JSON
        raise MLMatchingError(
            f"{url} did not answer as the trainer does ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "is --trainer or ML_TRAINER_URL the trainer's address?"
        ) from None


def _refusal(exc: urllib.error.HTTPError) -> MLMatchingError:
    try:
        body = json.loads(exc.read())
        detail, code = body["detail"], body["error"]
    except (ValueError, KeyError, TypeError):
        return MLMatchingError(f"the trainer answered {exc.code} {exc.reason}")
    error = InvalidInput if exc.code == 400 else MLMatchingError
    return error(f"{detail} ({exc.code} {code})")


def _print_list(experiments: list[dict[str, Any]]) -> None:
    if not experiments:
        print("no experiments")
        return
    print(f"{'id':<28}{'state':<10}{'name':<20}{'control':<18}candidates")
    for e in experiments:
        arms = ", ".join(f"{c['version']} {c['weight'] / 100:g} %" for c in e["candidates"]) or "-"
        print(f"{e['id']:<28}{e['state']:<10}{e['name']:<20}{e['control']:<18}{arms}")


def _print_view(view: dict[str, Any]) -> None:
    state = f"{view['state']}, revision {view['revision']}, horizon {view['horizonDays']:g} days"
    if view.get("phase"):
        state += f"; {view['phase']} at step {view['step']}"
    print(f"{view['id']} ({view['name']}): {state}")
    columns = ("units", "rows", "outcomes", "successes", "matured")
    print(f"  {'arm':<14}{'version':<18}{'weight':>7}" + "".join(f"{c:>10}" for c in columns))
    for a in view["arms"]:
        print(f"  {a['arm']:<14}{a['version']:<18}{a['weight']:>7}" + "".join(f"{a[c]:>10}" for c in columns))
    for s in view["shadow"]:
        print(f"  shadow {s['version']}: {s['rows']} rows scored, {s['failed']} failed")
    srm = view["srm"]
    p = "-" if srm.get("pValue") is None else f"{srm['pValue']:.3g}"
    rate = "-" if view.get("joinRate") is None else f"{view['joinRate']:.1%}"
    print(
        f"  SRM p-value {p} over {srm['units']} units; join rate {rate}, {view['pending']} outcomes waiting"
    )
    sys.stdout.flush()
