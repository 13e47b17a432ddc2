"""`attnviz serve`: a local page that redraws as you type, on models loaded once."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from attnviz.cli._options import DeviceOpt, DtypeOpt, TrustOpt, VerboseOpt


def serve(
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="A model to serve (repeat for several; default minilm): alias, hub id or local directory.",
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")] = 8765,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDR", help="Address to listen on (0.0.0.0 exposes it to the network).")
    ] = "127.0.0.1",
    max_tokens: Annotated[
        Optional[int],
        typer.Option("--max-tokens", min=1, metavar="N", help="Longest input accepted (default: the model's maximum)."),
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the web browser.")] = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    trust_remote_code: TrustOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Serve a local page that shows attention as you type, each model loaded once.

    The page has the views of `show -o page.html` (head, matrix, grid, rollout, neuron), a text
    box (and pair or target boxes where the model takes them) and a model picker; the address
    bar keeps the text, model and view, so a link reopens them. Ctrl-C stops it.
    """
    from attnviz.cli._output import note, quiet_unless, warn
    from attnviz.serve.server import ServeError, bind

    specs = list(dict.fromkeys(model or ["minilm"]))
    if host in ("0.0.0.0", "::", ""):
        warn(
            f"listening on {host or 'all addresses'}: anyone on your network can run texts through the models "
            "(the page still refuses other sites' requests)"
        )
    sock = bind(host, port)
    try:
        bound_port = sock.getsockname()[1]
        quiet_unless(verbose)
        from attnviz.serve.pool import load_pool

        def loaded(name: str, error: Exception | None) -> None:
            if error is None:
                note(f"loaded {name}")
            else:
                others = " (the others are served)" if len(specs) > 1 else ""
                warn(f"{name} failed to load: {getattr(error, 'message', error)}{others}")

        pool = load_pool(
            specs,
            max_tokens=max_tokens,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            verbose=verbose,
            on_loaded=loaded,
        )
        if not pool.models:
            raise ServeError(
                "no model could be loaded, so there is nothing to serve",
                hint="check the -m names (attnviz info MODEL says what is wrong)",
            )
        from attnviz.serve.app import create_app
        from attnviz.serve.server import run

        shown = f"[{host}]" if ":" in host else host
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else '[::1]' if host == '::' else shown}:{bound_port}/"
        app = create_app(pool, port=bound_port, host_names=[host])

        def started() -> None:
            note(f"serving {', '.join(pool.models)} at {url} (Ctrl-C stops)")
            sys.stderr.flush()
            if open_browser:
                import webbrowser

                webbrowser.open(url)

        run(app, sock, verbose=verbose, on_started=started)
    finally:
        sock.close()
