"""A Dask scheduler's address, as ``fit --dask``, ``score --dask`` and the trainer take it.

One checker for every room: the address is checked when it is given (a setting stops start-up
naming its variable), never resolved here; only its scheme goes into a sidecar, and log lines show
it without any user or password.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: The environment variable each command reads when its --dask flag is absent.
ENVIRONMENT = "DASK_SCHEDULER_ADDRESS"
#: Schemes distributed's comms accept; an address without one is tcp.
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def scheduler_address(text: str) -> str:
    """A Dask scheduler address, ``[SCHEME://]HOST:PORT``, as given (checked, not resolved).

    Raises
    ------
    ValueError
        Not an address, or an unknown scheme.
    """
    if scheme_of(text) not in SCHEMES:
        raise ValueError(f"expected a scheme among {', '.join(SCHEMES)}, got {scheme_of(text)!r}")
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = parts._replace(netloc="")
    if not parts.hostname or parts.port is None or parts.path not in ("", "/"):
        raise ValueError("expected a Dask scheduler address with its port, such as tcp://scheduler:8786")
    return text


def scheme_of(address: str) -> str:
    """The address's scheme (``tcp`` when it has none): all the sidecar keeps of it."""
    return address.split("://", 1)[0].lower() if "://" in address else "tcp"


def shown(address: str) -> str:
    """The address for a log line: scheme, host and port, without any user or password."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"
