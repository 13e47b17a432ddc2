"""`attnviz serve`: one server subprocess for the module (tiny BERT and BART, the bundled
MiniLM and a model that fails to load), driven with httpx and with Playwright in Chromium."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


class Server:
    def __init__(self, process: subprocess.Popen, port: int, models: dict[str, str], log: list[str]) -> None:
        self.process, self.port, self.models, self.log = process, port, models, log
        self.url = f"http://127.0.0.1:{port}/"


def _environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    broken = tmp_path_factory.mktemp("broken")
    (broken / "config.json").write_text("{ not json", encoding="utf-8")
    models = {"bert": str(tiny_models["bert"]), "bart": str(tiny_models["bart"]), "minilm": "minilm"}
    command = [sys.executable, "-m", "attnviz", "serve", "--port", "0", "--device", "cpu"]
    for spec in [*models.values(), str(broken)]:
        command += ["-m", spec]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_environment())
    log: list[str] = []
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            match = re.search(r"serving .* at http://127\.0\.0\.1:(\d+)/", line)
            if match:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(180)
    assert found, "".join(log)
    running = Server(process, found[0], {**models, "broken": str(broken)}, log)
    yield running
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def _post(server: Server, body: dict, **headers: str):
    import httpx

    return httpx.post(server.url + "api/attention", json=body, headers=headers, timeout=60)


def _post_to(server: Server, route: str, body: dict):
    import httpx

    return httpx.post(server.url + route, json=body, timeout=120)


def _weights(entry: dict, bits: int) -> np.ndarray:
    """The page data's attention, decoded here as the page does: zlib, little-endian uints."""
    raw = zlib.decompress(base64.b64decode(entry["data"]))
    values = np.frombuffer(raw, dtype="<u2" if bits == 16 else "u1").astype(np.float64)
    return (values / (65535 if bits == 16 else 255)).reshape(entry["shape"])


# -- the API -------------------------------------------------------------------------------
def test_models_listed_and_the_failed_one_named(server):
    import httpx

    document = httpx.get(server.url + "api/models", timeout=30).json()
    assert [m["name"] for m in document["models"]] == [server.models[k] for k in ("bert", "bart", "minilm")]
    by_name = {m["name"]: m for m in document["models"]}
    assert by_name[server.models["bert"]]["pair"] and not by_name[server.models["bert"]]["target"]
    assert by_name[server.models["bart"]]["target"] and not by_name[server.models["bart"]]["pair"]
    assert [f["name"] for f in document["failed"]] == [server.models["broken"]]
    assert document["failed"][0]["error"] and "\n" not in document["failed"][0]["error"]
    assert any("failed to load" in line for line in server.log)


def test_attention_equals_an_extraction_in_this_process(server, loaded_models):
    from attnviz.extraction import extract

    response = _post(server, {"model": server.models["bert"], "text": "the cat sat", "pair": "a dog ran"})
    assert response.status_code == 200, response.text
    document = response.json()
    expected = extract("the cat sat", model=loaded_models["bert"], pair="a dog ran")
    assert document["tokens"]["source"]["display"] == list(expected.tokens.display)
    got = _weights(document["kinds"]["encoder"], document["bits"])
    assert np.abs(got - expected.attentions["encoder"]).max() <= 1 / 65535


def test_errors_are_json_with_the_command_lines_messages(server):
    empty = _post(server, {"model": server.models["bert"], "text": "   "})
    assert empty.status_code == 400 and empty.json()["error"] == "the text is empty"
    pair_on_bart = _post(server, {"model": server.models["bart"], "text": "a b", "pair": "c"})
    assert pair_on_bart.status_code == 400
    assert pair_on_bart.json()["error"].startswith("a sentence pair needs an encoder model")
    too_long = _post(server, {"model": server.models["bert"], "text": " ".join(["the"] * 60)})
    assert too_long.status_code == 400 and "more than the model's maximum of 48" in too_long.json()["error"]
    assert too_long.json()["hint"] == "shorten it: the server never cuts a text"  # no truncation to allow
    not_text = _post(server, {"model": server.models["bert"], "text": 5})
    assert json.loads(not_text.json()["hint"].removeprefix("send ")) == {"text": "..."}  # JSON, not Python
    for seq in ("x", -1, True, 1.5):
        bad_seq = _post(server, {"model": server.models["bert"], "text": "a", "seq": seq})
        assert bad_seq.status_code == 400 and bad_seq.json()["error"] == "seq must be a non-negative integer", seq
    failed = _post(server, {"model": server.models["broken"], "text": "a"})
    assert failed.status_code == 404 and "failed to load" in failed.json()["error"]


def test_no_file_is_reachable_and_bodies_are_capped(server, tmp_path):
    import httpx

    # a model the server was not started with is never loaded, even a real directory
    other = _post(server, {"model": str(tmp_path), "text": "a"})
    assert other.status_code == 404 and other.json()["error"].startswith("unknown model")
    for path in ("etc/passwd", "../../etc/passwd", "static/page.js", "api/attention/../../x"):
        response = httpx.get(server.url + path, timeout=10)
        assert response.status_code == 404 and response.json()["error"] == "not found"
    huge = httpx.post(
        server.url + "api/attention",
        content=json.dumps({"text": "a " * 400_000}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert huge.status_code == 413 and huge.json()["error"].startswith("the request body is over")
    not_json = httpx.post(
        server.url + "api/attention", content=b"text=a", headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert not_json.status_code == 415


def test_foreign_origin_and_host_are_refused(server):
    import httpx

    body = {"model": server.models["bert"], "text": "the cat"}
    assert _post(server, body, Origin=f"http://127.0.0.1:{server.port}").status_code == 200
    assert _post(server, body, Origin="http://evil.example").status_code == 403
    assert _post(server, body, Origin="null").status_code == 403
    # DNS rebinding: the browser sends the attacker's name as Host
    assert _post(server, body, Host=f"evil.example:{server.port}").status_code == 403
    assert _post(server, body, Host=f"127.0.0.1:{server.port + 1}").status_code == 403
    page = httpx.get(server.url, headers={"Host": f"rebind.evil.example:{server.port}"}, timeout=10)
    assert page.status_code == 403 and "attnviz" not in page.text
    assert httpx.get(f"http://localhost:{server.port}/", timeout=10).status_code == 200


def test_eight_clients_in_order_stale_requests_dropped_waits_bounded(server):
    """While a long text keeps MiniLM busy, 8 clients each send 3 texts at once: each
    client's newest text is answered, its older ones are dropped as stale, the answers come
    in arrival order, and none waits for more passes than there are clients."""
    import httpx

    model = server.models["minilm"]
    blocker_text = " ".join(["attention"] * 400)

    async def run() -> tuple[dict, list[list[tuple[int, httpx.Response]]]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            # open the connections first, so the burst below arrives within milliseconds
            await asyncio.gather(*(http.get("api/models") for _ in range(26)))
            blocker = asyncio.ensure_future(
                http.post("api/attention", json={"model": model, "text": blocker_text, "client": "blocker"})
            )
            await asyncio.sleep(0)
            burst = [
                [
                    (
                        seq,
                        http.post(
                            "api/attention",
                            json={
                                "model": model,
                                "text": f"client {c} typed version {seq}",
                                "client": f"c{c}",
                                "seq": seq,
                            },
                        ),
                    )
                    for seq in (1, 2, 3)
                ]
                for c in range(8)
            ]
            flat = [request for client in burst for _, request in client]
            answers = await asyncio.gather(blocker, *flat)
        it = iter(answers[1:])
        return answers[0].json(), [[(seq, next(it)) for seq, _ in client] for client in burst]

    blocker, clients = asyncio.run(run())
    assert blocker["timing"]["passes_waited"] == 0
    answered = []
    for c, responses in enumerate(clients):
        statuses = {seq: r.status_code for seq, r in responses}
        assert statuses == {1: 409, 2: 409, 3: 200}, statuses
        assert all(r.json().get("stale") for seq, r in responses if seq < 3)
        final = responses[-1][1].json()
        assert final["text"] == f"client {c} typed version 3"
        answered.append(final["timing"])
    order = sorted(answered, key=lambda t: t["arrival"])
    assert [t["pass"] for t in order] == sorted(t["pass"] for t in order)  # first come, first served
    assert max(t["passes_waited"] for t in answered) <= 8


def test_attribution_equals_attnviz_attribute_json(server):
    from helpers import invoke

    text = "the cat sat on the mat"
    response = _post_to(server, "api/attribution", {"model": "minilm", "text": text})
    assert response.status_code == 200, response.text
    served = response.json()
    assert served["methods"] == ["ablation", "grad-x-input", "attention", "rollout", "grad-rollout"]
    done = invoke("attribute", text, "-m", "minilm", "--json", *sum((["--method", m] for m in served["methods"]), []))
    assert done.exit_code == 0, done.output
    expected = json.loads(done.stdout)
    assert served["tokens"] == expected["tokens"] and served["meta"]["output"] == expected["meta"]["output"]
    for got, want in zip(served["scores"], expected["scores"]):
        assert [g is None for g in got] == [w is None for w in want]
        np.testing.assert_allclose([g for g in got if g is not None], [w for w in want if w is not None], atol=1e-5)


# -- the command line ----------------------------------------------------------------------
def test_busy_port_and_open_host_are_one_line_each(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "attnviz", "serve", "--port", str(port), "--host", "0.0.0.0"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_environment(),
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("warning: listening on 0.0.0.0")
    assert lines[1] == f"error: port {port} on 0.0.0.0 is already in use"
    assert "Traceback" not in done.stderr


# -- the page in Chromium ------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("request", lambda request: requests.append(request.url))
    opened.errors, opened.requests = errors, requests  # type: ignore[attr-defined]
    yield opened
    context.close()
    assert errors == []
    assert all(url.startswith(server.url) for url in requests), requests


def _wait_seq(page, seq: int) -> None:
    page.wait_for_selector(f"body[data-seq='{seq}']", timeout=20000)


def _left_tokens(page) -> list[str]:
    return page.locator("#left li").all_inner_texts()


@pytest.mark.browser
def test_typing_switching_and_a_link_reopening_the_state(page, server):
    from urllib.parse import quote

    page.goto(f"{server.url}?model={quote(server.models['bert'])}&text=the+cat")
    _wait_seq(page, 1)
    assert _left_tokens(page) == ["[CLS]", "the", "cat", "[SEP]"]
    assert page.locator("#pair-label").is_visible() and not page.locator("#target-label").is_visible()
    page.locator("#text").fill("the dog ran")
    _wait_seq(page, 2)
    assert _left_tokens(page) == ["[CLS]", "the", "dog", "ran", "[SEP]"]
    page.select_option("#view", "matrix")
    page.select_option("#layer", "1")
    page.select_option("#head", "2")
    # switch model: BART takes a target text and has three kinds of attention
    page.select_option("#model", server.models["bart"])
    _wait_seq(page, 3)
    assert page.locator("#target-label").is_visible() and not page.locator("#pair-label").is_visible()
    assert page.locator("#kind option").all_inner_texts()[0] == "encoder"
    assert page.locator("#kind option").count() == 3
    assert page.locator("body").get_attribute("data-view") == "matrix"
    assert page.locator("body").get_attribute("data-layer") == "1"
    link = page.url
    assert "view=matrix" in link and "layer=1" in link and "text=the+dog+ran" in link
    # the link reopens the same text, model and view
    page.goto(link)
    _wait_seq(page, 1)
    assert page.locator("#text").input_value() == "the dog ran"
    assert page.locator("#model").input_value() == server.models["bart"]
    assert page.locator("#view").input_value() == "matrix"
    assert page.locator("body").get_attribute("data-layer") == "1"
    assert page.locator("#matrix-view").is_visible()
    # the neuron view asks for the query and key vectors, which the other views leave out
    page.select_option("#view", "neuron")
    _wait_seq(page, 2)
    assert page.locator("#neuron-view").is_visible()
    assert page.locator("#neuron-numbers tbody tr").count() > 0
    # the attribution view: a row per live method of `attnviz attribute`, a column per token
    page.select_option("#model", server.models["minilm"])
    _wait_seq(page, 3)
    page.select_option("#view", "attribute")
    _wait_seq(page, 4)
    assert page.locator("#attribute-view").is_visible() and page.locator("#neuron-view").is_hidden()
    assert page.locator("#attribute-table tbody tr").count() == 5
    assert page.locator("#attribute-table thead th").all_inner_texts()[1:] == ["[CLS]", "the", "dog", "ran", "[SEP]"]
    assert "view=attribute" in page.url
    page.select_option("#view", "matrix")  # the attention shown is still for this text: no new request
    assert page.locator("#matrix-view").is_visible() and page.locator("#attribute-view").is_hidden()
    # an error is shown as the command line words it, and the last drawing stays
    page.locator("#text").fill(" ".join(["the"] * 600))
    page.wait_for_selector("#serve-status.error", timeout=20000)
    assert "more than the model's maximum of 512" in page.locator("#serve-status").inner_text()
    assert page.locator("body").get_attribute("data-seq") == "4"
    assert page.locator("#matrix-view").is_visible()


@pytest.mark.browser
def test_numbers_on_the_page_equal_show_json(page, server, tmp_path):
    text = "the cat sat on the mat"
    saved = tmp_path / "show.json"
    # in-process (the server is the other process): the same command line, without a second torch start
    from helpers import invoke

    done = invoke("show", text, "-m", server.models["bert"], "--json", "-o", saved)
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    weights = np.asarray(json.loads(saved.read_text(encoding="utf-8"))["encoder"])
    from urllib.parse import quote

    page.goto(f"{server.url}?model={quote(server.models['bert'])}&text={quote(text)}&view=matrix&layer=2&head=1")
    _wait_seq(page, 1)
    keys = summary["tokens"]
    matrix = page.locator("#matrix")
    box = matrix.bounding_box()
    left, top, cell = (float(matrix.get_attribute(f"data-{name}")) for name in ("left", "top", "cell"))
    for i, j in [(0, 0), (1, 2), (3, 4), (len(keys) - 1, 1)]:
        page.mouse.move(box["x"] + left + (j + 0.5) * cell, box["y"] + top + (i + 0.5) * cell)
        readout = page.locator("#readout").inner_text()
        prefix, shown = readout.rsplit(": ", 1)
        assert prefix == f"{keys[i]} ({i}) → {keys[j]} ({j})"
        # four decimals of a 16-bit value: within half a unit of the 4th decimal plus 1/65535
        assert abs(float(shown) - weights[2, 1, i, j]) <= 0.00005 + 1 / 65535


def test_ctrl_c_stops_cleanly(server):
    server.process.send_signal(signal.SIGINT)
    code = server.process.wait(30)
    time.sleep(0.2)
    log = "".join(server.log)
    assert code == 130, log
    assert "Traceback" not in log
    assert log.rstrip().endswith("interrupted")
