"""The warm models of a server and the queue in front of each.

Each model is loaded once. Requests for it wait in one first-in, first-out queue served by
one task, so at most one forward pass per model runs at a time and clients are answered in
the order they asked. A client's request that is still waiting when the same client sends a
newer one is answered at once as stale: a typist only needs the newest text drawn.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attnviz.errors import AttnvizError, InputError, TooLongError

#: The server refuses a text longer than the model takes; it never cuts one.
NEVER_CUT = "shorten it: the server never cuts a text"

if TYPE_CHECKING:
    from attnviz.models import LoadedModel


class StaleRequest(Exception):
    """The client sent a newer request before this one reached the model."""


#: The attribution methods the page runs: those of `attnviz attribute` fast enough to answer
#: while typing (integrated gradients takes 32 passes; AttnLRP needs lxt).
LIVE_METHODS = ("ablation", "grad-x-input", "attention", "rollout", "grad-rollout")


@dataclass(frozen=True)
class Query:
    """What one request asks of a model. ``vectors``: also the query and key vectors (the
    neuron view), which cost a larger answer, so only that view asks for them.
    ``task``: ``attention`` (the page data), ``attribution`` (token attributions, as
    `attnviz attribute --json` prints them, for :data:`LIVE_METHODS`) or ``lesson``
    (`attnviz lesson --json`'s document, or with ``picture`` one step's picture).
    ``layer``, ``head``, ``query``: the lesson's step 4 (0-based; None: the lesson's own
    choice)."""

    text: str
    pair: str | None = None
    target: str | None = None
    vectors: bool = False
    task: str = "attention"
    layer: int | None = None
    head: int | None = None
    query: int | None = None
    picture: int | None = None


@dataclass
class _Waiting:
    query: Query
    client: str
    future: asyncio.Future[dict[str, Any]]
    number: int  # arrival order on this model
    passes_before: int  # forward passes started before it arrived
    arrived: float = field(default_factory=time.perf_counter)


#: Clients whose newest sequence number is remembered (oldest forgotten first).
REMEMBERED_CLIENTS = 10_000


class WarmModel:
    """One loaded model, its extractors and its request queue.

    ``max_tokens``: the longest input (text plus pair, or the target) it takes; the model's
    own maximum when ``None``.
    """

    def __init__(self, loaded: LoadedModel, max_tokens: int | None = None) -> None:
        from attnviz.extraction import Extractor

        self.loaded = loaded
        limit = int(loaded.max_length)
        self.max_tokens = min(limit, max_tokens) if max_tokens else limit
        # truncate=False: a text over the maximum is refused with the CLI's message, never cut
        self._extractors = {
            False: Extractor(loaded, truncate=False),
            True: Extractor(loaded, truncate=False, vectors=True),
        }
        self._queue: OrderedDict[int, _Waiting] = OrderedDict()
        self._by_client: dict[str, int] = {}  # client -> its waiting request's number
        self._newest: OrderedDict[str, int] = OrderedDict()  # client -> highest sequence number seen
        self._next = 0
        self._passes = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.forward_seconds: float | None = None
        self._attributor: Any = None  # loaded on the first attribution request
        self._lessons: Any = None  # made on the first lesson request

    @property
    def name(self) -> str:
        return self.loaded.name

    def describe(self) -> dict[str, Any]:
        """What the page's model picker needs to know."""
        family = self.loaded.family
        return {
            "name": self.name,
            "family": family,
            "pair": family == "encoder",
            "target": family == "encoder-decoder",
            "max_tokens": self.max_tokens,
        }

    # -- the queue -------------------------------------------------------------------
    async def submit(self, query: Query, client: str, seq: int | None = None) -> dict[str, Any]:
        """The page data for ``query``, or the input's :class:`AttnvizError`.

        Raises :class:`StaleRequest` when ``client`` sends a newer request before this one
        starts. ``seq``: the client's own numbering; a request arriving after one with a
        higher number (a browser's requests can overtake each other on separate
        connections) is stale at once."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._serve())
        if seq is not None:
            newest = self._newest.pop(client, None)
            if newest is not None and seq < newest:
                self._newest[client] = newest
                raise StaleRequest()
            self._newest[client] = seq
            if len(self._newest) > REMEMBERED_CLIENTS:
                self._newest.popitem(last=False)
        earlier = self._by_client.pop(client, None)
        if earlier is not None and earlier in self._queue:
            dropped = self._queue.pop(earlier)
            if not dropped.future.done():
                dropped.future.set_exception(StaleRequest())
        self._next += 1
        waiting = _Waiting(query, client, loop.create_future(), self._next, self._passes)
        self._queue[self._next] = waiting
        self._by_client[client] = self._next
        assert self._wake is not None
        self._wake.set()
        return await waiting.future

    async def _serve(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            number, waiting = self._queue.popitem(last=False)
            if self._by_client.get(waiting.client) == number:
                del self._by_client[waiting.client]
            if waiting.future.done():  # the client went away
                continue
            started = time.perf_counter()
            self._passes += 1
            number = self._passes
            try:
                # the forward pass runs in a thread so the event loop keeps accepting requests
                data = await asyncio.to_thread(self.compute, waiting.query)
            except AttnvizError as error:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
                continue
            except Exception as error:  # a bug: answer 500, keep serving the others
                if not waiting.future.done():
                    waiting.future.set_exception(error)
                continue
            done = time.perf_counter()
            data["timing"] = {
                "waited_ms": round((started - waiting.arrived) * 1000, 2),
                "computed_ms": round((done - started) * 1000, 2),
                "forward_ms": round((self.forward_seconds or 0.0) * 1000, 2),
                # the queue's order, for clients and tests: arrival, pass, passes waited for
                "arrival": waiting.number,
                "pass": number,
                "passes_waited": number - 1 - waiting.passes_before,
            }
            if not waiting.future.done():
                waiting.future.set_result(data)

    # -- one input -------------------------------------------------------------------
    def compute(self, query: Query) -> dict[str, Any]:
        """Tokenize, run and pack one input (in a worker thread)."""
        from attnviz.extraction import TextInput
        from attnviz.render.html import page_data

        if query.task == "attribution":
            return self._attribute(query)
        if query.task == "lesson":
            return self._lesson(query)
        extractor = self._extractors[query.vectors]
        encoded = self._encode_within_limit(extractor, TextInput(query.text, query.pair, query.target))
        started = time.perf_counter()
        result = extractor.run_batch([encoded])[0]
        self.forward_seconds = time.perf_counter() - started
        return page_data(result)

    def _encode_within_limit(self, encoder: Any, item: Any) -> Any:
        """``item`` tokenized by ``encoder``, or the CLI's error for a text over the model's
        maximum (the server never cuts a text) or over ``--max-tokens``."""
        try:
            encoded = encoder.encode(item)
        except TooLongError as exc:
            raise InputError(exc.message, hint=NEVER_CUT) from exc
        length = max(len(encoded.ids), len(encoded.target_ids or ()))
        if length > self.max_tokens:
            raise InputError(
                f"the text has {length} tokens, more than this server's maximum of {self.max_tokens}",
                hint="shorten it, or start the server with a larger {max_tokens}",
                option="max_tokens",
            )
        return encoded

    def _lesson(self, query: Query) -> dict[str, Any]:
        from attnviz.extraction import TextInput
        from attnviz.serve.lessons import LessonStore

        if query.pair is not None:
            raise InputError("the lesson reads one text, not a sentence pair", hint="leave the pair box empty")
        target = query.target
        if self.loaded.family == "encoder-decoder" and target is None:
            target = query.text  # as `attnviz lesson` does: the decoder reads the text itself
        # the lesson's own extractor cuts a long text; the server refuses it first, in its words
        self._encode_within_limit(self._extractors[False], TextInput(query.text, None, target))
        if self._lessons is None:
            self._lessons = LessonStore(self.loaded)
        started = time.perf_counter()
        if query.picture is not None:
            return self._lessons.picture(query)  # type: ignore[no-any-return]
        document: dict[str, Any] = self._lessons.document(query)
        self.forward_seconds = time.perf_counter() - started
        return document

    def _attribute(self, query: Query) -> dict[str, Any]:
        from attnviz.attribution import Attributor
        from attnviz.extraction import TextInput

        if self._attributor is None:
            self._attributor = Attributor(self.loaded, truncate=False)
        attributor = self._attributor
        # an encoder's pair is scored too (`attnviz attribute --pair`)
        encoded = self._encode_within_limit(attributor.extractor, TextInput(query.text, query.pair, query.target))
        applicable, notes = attributor.choose_methods(None, len(encoded.ids))
        from attnviz.models import unknown_token_warning

        unknown = unknown_token_warning(self.loaded.tokenizer, encoded.tokens)
        notes = [*notes, unknown] if unknown else notes  # the page shows the notes under the tokens
        methods = [m for m in LIVE_METHODS if m in applicable]
        started = time.perf_counter()
        attribution = attributor.attribute_encoded(encoded, methods, notes)
        self.forward_seconds = time.perf_counter() - started
        document = attribution.to_dict()
        document["signed"] = [attribution.signed(m) for m in methods]
        # which sentence of a pair each token is in (0, 1), for the page's columns
        document["segments"] = [int(s) for s in encoded.tokens.segment_ids]
        return document


@dataclass
class ModelPool:
    """The server's models by name, and those that failed to load with their one-line
    message (the page lists them)."""

    models: dict[str, WarmModel]
    failed: dict[str, str]

    @property
    def default(self) -> str:
        return next(iter(self.models))

    def describe(self) -> dict[str, Any]:
        return {
            "models": [m.describe() for m in self.models.values()],
            "failed": [{"name": name, "error": message} for name, message in self.failed.items()],
        }


def load_pool(
    specs: list[str],
    *,
    max_tokens: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    verbose: bool = False,
    on_loaded: Any = None,
) -> ModelPool:
    """Load each model once; a model that fails is recorded, the others still load.
    ``on_loaded(name, error_or_None)`` is called after each."""
    from attnviz.models import load_model

    models: dict[str, WarmModel] = {}
    failed: dict[str, str] = {}
    for spec in specs:
        try:
            loaded = load_model(spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code, verbose=verbose)
            warm = WarmModel(loaded, max_tokens)
            warm.compute(Query("warm up"))  # the first forward pass pays for lazy setup
        except AttnvizError as error:
            failed[spec] = error.message
            if on_loaded:
                on_loaded(spec, error)
            continue
        models[spec] = warm
        if on_loaded:
            on_loaded(spec, None)
    return ModelPool(models, failed)
