"""Ray for attnviz: connect, spread windows of texts over a pool of model actors, collect.

The driver (the ``attnviz`` process) reads and checks the inputs with attnviz's own
reader, so bad lines, JSONL fields and line numbers are exactly those of a single-process
run, and cuts the texts into *windows*: the same windows a single-process run sorts and
batches (:meth:`attnviz.extraction.Extractor.reduce`'s ``window``). Ray Data carries the
windows (``from_items``, one row each) to ``map_batches`` over an actor pool; each actor
loads the model once (``num_gpus=1`` each when the cluster has GPUs) and runs a whole
window as one process would, so every forward pass sees the same batch and the numbers
match a single-process run. Only small results come back (per-head sums, manifest
records); the driver merges them as each window completes, which also feeds the progress
bar. Workers do not need the input file, only the model (and, for export, the output
directory on shared storage).

Faults: Ray Data's actors restart after a crash and the lost window is run again
(``max_restarts``/``max_task_retries``); a window's result reaches the driver once.
Ctrl-C stops the job: the iterator is closed and a Ray connection made here is shut
down, which ends the job's actors on a cluster too.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from attnviz.errors import AttnvizError

#: What to install for distributed runs.
RAY_INSTALL = 'pip install "attnviz[ray]"'
#: Texts per window: :meth:`attnviz.extraction.Extractor.reduce`'s default.
DEFAULT_WINDOW = 256


class DistributedError(AttnvizError):
    """Ray is missing, the cluster cannot be reached, or a worker failed for good."""


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line error naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra is ray[data]
    except ImportError as exc:
        raise DistributedError(
            "distributed runs need Ray (with Ray Data), which is not installed", hint=RAY_INSTALL
        ) from exc
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    ``address``: None for a local Ray instance on this machine's cores; ``"auto"`` or an
    address (``host:6379``, ``ray://host:10001``) to join a running cluster. ``workers``:
    model actors (default: one per GPU when the cluster has GPUs, else one per
    ``cpus_per_worker`` CPUs). ``init``: extra ``ray.init`` arguments for a local instance
    (``num_cpus``, ``object_store_memory``)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    use_gpus: bool | None = None
    verbose: bool = False
    init: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """How each actor loads the model (the arguments of :func:`attnviz.models.load_model`)."""

    name: str | None
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False

    def load(self, verbose: bool = False) -> Any:
        from attnviz.models import load_model

        return load_model(
            self.name,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            verbose=verbose,
        )


def windows(items: Sequence[Any], size: int = DEFAULT_WINDOW) -> list[list[Any]]:
    """``items`` cut into consecutive windows of ``size`` (the last may be shorter)."""
    size = max(1, int(size))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _quiet(ray: Any, verbose: bool) -> None:
    """Ray Data's own progress bars and execution logs off: the progress is ours."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    if not verbose:
        for name in ("ray", "ray.data", "ray._private", "ray.util"):
            logging.getLogger(name).setLevel(logging.ERROR)


class Connection:
    """A Ray connection for one run: joined, or a local instance started here.

    Only a connection made here is shut down at the end (a caller that initialised Ray
    itself, a notebook or a test, keeps its instance)."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.ray = import_ray()
        self.owned = False

    def __enter__(self) -> Connection:
        ray, options = self.ray, self.options
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": options.verbose,
                "logging_level": logging.INFO if options.verbose else logging.ERROR,
            }
            if options.address is None:
                kwargs.update(options.init)
            else:
                check_reachable(options.address)
                kwargs["address"] = options.address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "a local Ray instance" if options.address is None else f"the Ray cluster at {options.address}"
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DistributedError(
                    f"cannot start or reach {where}: {first}",
                    hint="start the cluster first (ray start, see docs/distributed.md), or check the address; auto joins "
                    "the cluster started on this machine",
                ) from exc
            self.owned = True
        _quiet(ray, options.verbose)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.ray.shutdown()

    def shape(self) -> tuple[int, float | None, float | None]:
        """(actors, GPUs per actor or None, CPUs per actor or None) for this cluster."""
        resources = self.ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        use_gpus = self.options.use_gpus if self.options.use_gpus is not None else gpus > 0
        if use_gpus:
            if gpus < 1:
                raise DistributedError("GPUs were asked for, but the Ray cluster has none")
            return (self.options.workers or gpus), 1.0, None
        per = max(self.options.cpus_per_worker, 0.01)
        cpus = float(resources.get("CPU", 1))
        return (self.options.workers or max(1, int(cpus // per))), None, per


#: Ray's head port when an address names none.
DEFAULT_PORT = 6379
#: Seconds to wait for a cluster's head to accept a connection.
REACH_TIMEOUT = 5.0


def check_reachable(address: str, *, timeout: float = REACH_TIMEOUT) -> None:
    """A :class:`DistributedError` unless something accepts a TCP connection at a
    ``HOST[:PORT]`` address within ``timeout`` seconds: with nothing there, ``ray.init``
    retries for many minutes, printing its C++ client's warnings, and ignores one Ctrl-C.
    ``auto`` (the address file of this machine) and ``ray://`` (Ray Client, which fails fast
    on its own) are left to Ray."""
    import socket

    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":") if not address.endswith("]") else (address, "", "")
    if not host or not port.isdigit():
        host, port = address, str(DEFAULT_PORT)
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise DistributedError(
            f"cannot reach the Ray cluster at {host}:{port}: {reason}",
            hint="start it first (ray start, see docs/distributed.md) or check the address",
        ) from exc


class WindowJob:
    """Base of the actors: ``setup()`` once per actor, ``run(window)`` per window.

    Payloads and results travel as JSON strings (Arrow-friendly, and exact for float64).
    An :class:`AttnvizError` (a model that cannot be loaded, a bad selection) is returned
    as the window's result rather than raised, so the driver words it as one line instead
    of Ray retrying it."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.failure: dict[str, Any] | None = None
        try:
            self.setup(*args)
        except AttnvizError as exc:
            self.failure = error_payload(exc)

    def setup(self, *args: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self, window: list[Any]) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for payload in batch["payload"]:
            if self.failure is not None:
                out.append(json.dumps({"error": self.failure}))
                continue
            try:
                out.append(json.dumps(self.run(json.loads(payload))))
            except AttnvizError as exc:
                out.append(json.dumps({"error": error_payload(exc)}))
        return {"window": batch["window"], "result": out}


def error_payload(exc: AttnvizError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "state": {k: v for k, v in exc.__dict__.items() if _jsonable(v)}}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def raise_error(payload: dict[str, Any]) -> None:
    """Raise the :class:`AttnvizError` a worker returned, as the same class when known."""
    import attnviz.errors as errors

    cls = getattr(errors, str(payload.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, AttnvizError)):
        cls = DistributedError
    error = cls.__new__(cls)
    Exception.__init__(error, payload["state"].get("message", ""))
    error.__dict__.update(payload["state"])
    error.options = tuple(error.__dict__.get("options", ()))
    raise error


def run_windows(
    payloads: Sequence[Any],
    job: type[WindowJob],
    arguments: tuple[Any, ...],
    options: RayOptions,
    on_result: Callable[[int, dict[str, Any]], None],
) -> None:
    """Run ``job(*arguments)`` actors over ``payloads`` (one JSON-able value per window)
    and call ``on_result(window_number, result)`` as each window completes (any order,
    each once). A worker's :class:`AttnvizError` is raised here; Ctrl-C stops the job."""
    if not payloads:
        return
    # Ray's driver threads print what they hear from the cluster (a worker that died, a task
    # retried after Ctrl-C...) to sys.stdout: while the job runs that goes to stderr, so a
    # command's --json stays clean, and without --verbose those lines are dropped
    with (
        contextlib.redirect_stdout(RayChatter(sys.stderr, keep=options.verbose)),
        _without_known_noise(options.verbose),
        Connection(options) as connection,
    ):
        ray = connection.ray
        actors, gpus, cpus = connection.shape()
        actors = max(1, min(actors, len(payloads)))
        rows = [{"window": number, "payload": json.dumps(payload)} for number, payload in enumerate(payloads)]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        remote: dict[str, Any] = {"num_gpus": gpus} if gpus else {"num_cpus": cpus}
        dataset = dataset.map_batches(
            job,
            fn_constructor_args=arguments,
            batch_size=1,
            batch_format="numpy",
            concurrency=actors,
            **remote,
        )
        results = iter(dataset.iter_rows())
        try:
            for row in results:
                result = json.loads(str(row["result"]))
                if "error" in result:
                    raise_error(result["error"])
                on_result(int(row["window"]), result)
        except BaseException:
            # stop the running dataset (its actors and queued windows) before unwinding
            _close(results)
            raise


class RayChatter(io.TextIOBase):
    """``sys.stdout`` while a job runs: whole lines to ``target`` (stderr), except Ray's own
    reports from the cluster unless ``keep``: lines that start with a process tag such as
    ``(raylet)`` or ``(MapWorker pid=...)``, and its log-deduplication notices."""

    def __init__(self, target: Any, *, keep: bool = False) -> None:
        self.target, self.keep, self.pending = target, keep, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if self.keep or not _ray_chatter(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending and (self.keep or not _ray_chatter(self.pending)):
            self.target.write(self.pending)
        self.pending = ""
        self.target.flush()


def _ray_chatter(line: str) -> bool:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line).lstrip()
    return bool(re.match(r"\((raylet|[A-Za-z_][\w.()]*( pid=\d+)?(, ip=[\d.]+)?)\)", plain)) or (
        "Ray deduplicates logs" in plain
    )


#: Lines Ray's C++ core worker writes straight to the driver's stderr on every Ray Data run
#: with actors, though nothing is wrong (ray-project/ray#57733): not shown without --verbose.
KNOWN_NOISE = ("has constructor arguments in the object store and max_restarts > 0",)


@contextlib.contextmanager
def _without_known_noise(verbose: bool) -> Iterator[None]:
    """Filter :data:`KNOWN_NOISE` out of what is written to file descriptor 2 meanwhile.

    Ray's core worker writes to the descriptor, past Python, so descriptor 2 becomes a pipe
    read by a thread that forwards every other line; Python's ``sys.stderr`` (the progress
    bar, attnviz's warnings) writes to the original stderr directly, so it stays a terminal.
    Nothing is done where ``sys.stderr`` is not descriptor 2 (a test's captured stderr)."""
    try:
        direct = not verbose and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        direct = False
    if not direct:
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    python_stderr = sys.stderr
    sys.stderr = open(  # noqa: SIM115 - closed below; shares the original descriptor
        original, "w", buffering=1, encoding=python_stderr.encoding, errors=python_stderr.errors, closefd=False
    )

    def forward() -> None:
        with open(read, "rb", closefd=True) as lines:
            for line in lines:
                if not any(noise.encode() in line for noise in KNOWN_NOISE):
                    try:
                        os.write(original, line)
                    except OSError:  # stderr itself closed: nothing left to tell
                        return

    thread = threading.Thread(target=forward, name="attnviz-ray-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(original, 2)  # the pipe's last writer here is gone: the thread reads to the end
        thread.join(timeout=2)
        if not thread.is_alive():  # else a child process still holds the pipe: keep forwarding
            os.close(original)


def _close(results: Iterator[Any]) -> None:
    close = getattr(results, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - already stopping
            pass
