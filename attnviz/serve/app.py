"""The Starlette application of `attnviz serve`.

Routes: ``GET /`` the page, ``GET /api/models`` the models, ``POST /api/attention`` one
input's page data, ``POST /api/attribution`` its token attributions, ``POST /api/lesson``
its lesson (or one step's picture). There is no route that reads or writes a file: the page
and its script come from the package's templates, loaded once.

Every request first passes :class:`LocalOnly`: a page on another site cannot drive the server
even through DNS rebinding, since its requests carry a foreign ``Host`` (the rebinding name) or
``Origin``. Errors are JSON ``{"error", "hint"}`` with the command line's one-line messages.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from attnviz.cli._errors import flag
from attnviz.errors import AttnvizError, InputError
from attnviz.serve.pool import ModelPool, Query, StaleRequest

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The page's policy: today's static page's, plus fetches to its own origin; no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: Bytes a request body may take per token of the largest model's maximum (text, pair and
#: target together, JSON-escaped), plus room for the other fields.
BYTES_PER_TOKEN = 3 * 64
BODY_SLACK = 16_384


def error_response(message: str, status: int, hint: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "hint": hint, **extra}
    return JSONResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _local_name(host: str) -> bool:
    """A name no other site can point at this server: ``localhost`` or an IP literal (DNS
    rebinding needs a domain name the attacker controls)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_host(value: str) -> tuple[str, int | None]:
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, _, rest = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        rest = f":{rest}" if rest else ""
    port = rest[1:] if rest.startswith(":") else ""
    return name.lower(), int(port) if port.isdigit() else None


class LocalOnly:
    """Refuse a request whose ``Host`` is not this server (a local name or IP, on our port,
    or the name given with ``--host``) or whose ``Origin``, when sent, is not the same
    origin. Starlette's TrustedHostMiddleware checks names only, not ports or Origin."""

    def __init__(self, app: ASGIApp, port: int, names: Iterable[str] = ()) -> None:
        self.app = app
        self.port = port
        self.names = {n.lower() for n in names if n}

    def allowed_host(self, value: str | None) -> bool:
        if not value:
            return False
        name, port = _split_host(value)
        if port != self.port:
            return False
        return _local_name(name) or name in self.names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.allowed_host(host):
            response = error_response(
                "this server answers only requests addressed to it by a local name",
                403,
                hint=f"open http://127.0.0.1:{self.port}/ (a foreign Host header was refused)",
            )
            await response(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            response = error_response(
                "requests from another site's page are refused",
                403,
                hint="open the page this server serves, not a copy on another origin",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refused past ``limit`` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge(limit)
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("the request body is not valid JSON", hint="send a JSON object") from exc
    if not isinstance(document, dict):
        raise InputError("the request body must be a JSON object")
    return document


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit


def _optional_text(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"'{key}' must be a string")
    return value


def _optional_index(document: dict[str, Any], key: str) -> int | None:
    """A 0-based index field: absent or null is None; anything but a non-negative integer is
    refused (a silently ignored choice would show another head than the one asked for)."""
    value = document.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{key} must be a non-negative integer", hint=f'send {{"{key}": 0, ...}} or leave it out')
    return value


def create_app(pool: ModelPool, *, port: int, host_names: Iterable[str] = ()) -> ASGIApp:
    """The ASGI application for ``pool``, accepting requests addressed to ``port``."""
    from attnviz.render.html import render_serve_page

    largest = max((m.max_tokens for m in pool.models.values()), default=512)
    body_limit = BODY_SLACK + BYTES_PER_TOKEN * largest
    page = render_serve_page(pool.describe())

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    async def models(request: Request) -> Response:
        return JSONResponse(pool.describe(), headers=SECURITY_HEADERS)

    async def attention(request: Request) -> Response:
        return await answer(request, "attention")

    async def attribution(request: Request) -> Response:
        return await answer(request, "attribution")

    async def lesson(request: Request) -> Response:
        return await answer(request, "lesson")

    async def answer(request: Request, task: str) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            # a plain form post from another page cannot send this type without CORS preflight
            return error_response("the request must be JSON (Content-Type: application/json)", 415)
        try:
            document = await _read_json(request, body_limit)
            name = document.get("model", pool.default)
            if not isinstance(name, str) or name not in pool.models:
                failed = pool.failed.get(name) if isinstance(name, str) else None
                if failed:
                    return error_response(f"model '{name}' failed to load: {failed}", 404)
                return error_response(f"unknown model '{name}'", 404, hint="this server has: " + ", ".join(pool.models))
            text = document.get("text")
            if not isinstance(text, str):
                raise InputError("the text must be a string", hint='send {"text": "..."}')
            query = Query(
                text,
                pair=_optional_text(document, "pair"),
                target=_optional_text(document, "target"),
                vectors=bool(document.get("vectors", False)),
                task=task,
                **(
                    {name: _optional_index(document, name) for name in ("layer", "head", "query", "picture")}
                    if task == "lesson"
                    else {}
                ),
            )
            client = str(document.get("client", request.client.host if request.client else "anonymous"))[:64]
            seq = document.get("seq")
            if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
                # the order of a client's requests: a wrong one would silently stop stale dropping
                raise InputError("seq must be a non-negative integer", hint='send {"seq": 1, ...} or leave it out')
            data = await pool.models[name].submit(query, client, seq)
        except _TooLarge as exc:
            return error_response(
                f"the request body is over {exc.limit} bytes",
                413,
                hint="shorten the text, or start the server with a larger --max-tokens",
            )
        except StaleRequest:
            return error_response("a newer request from this client replaced this one", 409, stale=True)
        except AttnvizError as error:
            # the page speaks the command line's language: the flags a hint names (--max-tokens)
            message, hint = error.worded(flag)
            return error_response(message, 400 if error.exit_code == 2 else 500, hint=hint)
        data["seq"] = document.get("seq")
        return JSONResponse(data, headers=SECURITY_HEADERS)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return error_response(str(detail).lower(), status)

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/api/models", models, methods=["GET"]),
            Route("/api/attention", attention, methods=["POST"]),
            Route("/api/attribution", attribution, methods=["POST"]),
            Route("/api/lesson", lesson, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    return LocalOnly(app, port, host_names)
