"""Bind the port, load the models, run uvicorn until Ctrl-C."""

from __future__ import annotations

import errno
import socket
from typing import Any

from attnviz.errors import AttnvizError


class ServeError(AttnvizError):
    """The server cannot start (port busy, no model loaded)."""

    exit_code = 1


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before any model loads so that a busy port is one line at
    once, not after a minute of loading."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is already in use",
                hint="pick another with {port}, or stop the other server",
                option="port",
            ) from exc
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise ServeError(
                f"cannot listen on {host}: {exc.strerror}", hint="use {host} 127.0.0.1", option="host"
            ) from exc
        if exc.errno == errno.EACCES:
            raise ServeError(f"no permission to listen on port {port}", hint="use a port above 1023") from exc
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    return sock


def run(app: Any, sock: socket.socket, *, verbose: bool = False, on_started: Any = None) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (uvicorn shuts down gracefully, then re-raises
    the interrupt, which the command line reports as exit 130). ``on_started()`` is called
    once the server accepts requests and uvicorn handles Ctrl-C, so that whoever is told
    "serving" may interrupt it at once."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if on_started is not None and not self.should_exit:
                on_started()

    config = uvicorn.Config(
        app,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = Server(config)
    server.run(sockets=[sock])
