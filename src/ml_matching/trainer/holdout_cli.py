"""``ml-matching holdout start|list|show|stop``: the trainer's long-lived holdout from a shell.

Like ``ml-matching experiment``, it talks HTTP to a running trainer (``--trainer``, else
``ML_TRAINER_URL``) with the admin token of ``ML_SERVICE_ADMIN_TOKEN`` for the changes.
"""

from __future__ import annotations

import argparse
from typing import Any

from ml_matching.contract.commandline import Handler
from ml_matching.trainer.experiment_cli import call, show, trainer_options


def configure(p: argparse.ArgumentParser) -> Handler:
    trainer_options(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    start = actions.add_parser("start", help="freeze a version for a share of the units (one at a time)")
    start.add_argument(
        "--weight", type=int, required=True, help="the share of units in basis points, 1 to 2000 (200 = 2 %%)"
    )
    start.add_argument("--version", help="the frozen version (default: ACTIVE)")
    start.add_argument(
        "--horizon-days", type=float, default=30.0, help="how long an outcome may take to arrive"
    )
    start.add_argument("--salt", help="the placement's salt (default: the holdout's id)")
    actions.add_parser("list", help="every holdout, newest first")
    for name, what in (
        ("show", "a holdout's two sides and what retraining gained (live minus holdout)"),
        ("stop", "end it: its units are served live again; its figures stay readable"),
    ):
        actions.add_parser(name, help=what).add_argument("id", help="the holdout's id (see `list`)")
    return _run


def _run(args: argparse.Namespace) -> int:
    trainer = args.trainer.rstrip("/")
    if args.action == "start":
        body: dict[str, Any] = {"weight": args.weight, "horizonDays": args.horizon_days}
        body |= {k: v for k, v in (("version", args.version), ("salt", args.salt)) if v is not None}
        answer = call("POST", f"{trainer}/holdouts", body)
    elif args.action == "list":
        answer = call("GET", f"{trainer}/holdouts")
    elif args.action == "show":
        answer = call("GET", f"{trainer}/holdouts/{args.id}")
    else:
        answer = call("POST", f"{trainer}/holdouts/{args.id}/stop")
    return show(answer, args, _print_list, _print_view)


def _print_list(records: list[dict[str, Any]]) -> None:
    if not records:
        print("no holdouts")
    for r in records:
        h = r["holdout"]
        state = f"ended {r['endedAt']}" if r.get("endedAt") else "running"
        print(f"{h['id']:<32}{h['version']:<18}{h['weight'] / 100:>6g} %  {state}")


def _print_view(view: dict[str, Any]) -> None:
    print(
        f"{view['id']}: {view['state']}, {view['version']} frozen for {view['weight'] / 100:g} % of the "
        f"units, horizon {view['horizonDays']:g} days"
    )
    print(f"  {'side':<10}{'rows':>8}{'matured':>9}{'log loss':>10}{'Brier':>8}{'success':>9}")
    for s in view["sides"]:
        m = s.get("metrics") or {}
        cells = (_num(m.get("logLoss")), _num(m.get("brier")), _num(m.get("successRate")))
        print(f"  {s['side']:<10}{s['rows']:>8}{s['matured']:>9}{cells[0]:>10}{cells[1]:>8}{cells[2]:>9}")
    for g in view["gain"]:
        cs = g["cs"]
        if cs["lower"] is None:  # too few matured outcomes on a side for a bound
            print(f"  live - holdout, {g['metric']}: no bound yet ({cs['n']} matured outcomes)")
            continue
        print(
            f"  live - holdout, {g['metric']}: {_num(cs['estimate'])} "
            f"[{_num(cs['lower'])}, {_num(cs['upper'])}] at {1 - cs['alpha']:.0%}, anytime-valid"
        )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
