"""`attnviz serve`'s lesson view and the pair in its attribution view: one server in this
process (uvicorn in a thread, on the session's tiny BERT and a tiny Gemma 3, whose layer
shape the lesson does not read), driven with httpx and with Playwright in Chromium."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from helpers import invoke

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TEXT = "the cat sat on the mat"


class Running:
    def __init__(self, port: int, models: dict[str, str], warm: dict, gate: threading.Event) -> None:
        self.port, self.models, self.warm, self.gate = port, models, warm, gate
        self.url = f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def server(loaded_models, tmp_path_factory):
    import uvicorn
    from families import build

    from attnviz.models import load_model
    from attnviz.serve.app import create_app
    from attnviz.serve.pool import ModelPool, WarmModel
    from attnviz.serve.server import bind

    gate = threading.Event()
    gate.set()

    class Gated(WarmModel):
        """A model whose request for the text "gate" waits until the test opens the gate:
        the queue is then busy for exactly as long as a test needs."""

        def compute(self, query):
            if query.text == "gate":
                gate.wait(60)
            return super().compute(query)

    gemma = load_model(str(build("gemma3", tmp_path_factory.mktemp("serve-lesson"))), device="cpu")
    loaded = {"bert": loaded_models["bert"], "gemma3": gemma}
    warm = {key: Gated(model) for key, model in loaded.items()}
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(ModelPool({w.name: w for w in warm.values()}, {}), port=port)
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if uvicorn_server.started:
            break
        time.sleep(0.05)
    yield Running(port, {key: w.name for key, w in warm.items()}, warm, gate)
    gate.set()
    uvicorn_server.should_exit = True
    thread.join(10)


def _post(server: Running, route: str, body: dict):
    import httpx

    return httpx.post(server.url + route, json=body, timeout=120)


def _lesson_only(document: dict) -> dict:
    """The served answer less what the server adds (timing, order, notes)."""
    return {k: v for k, v in document.items() if k not in ("timing", "seq", "notes", "lesson_ms")}


# -- the API -------------------------------------------------------------------------------
def test_lesson_equals_attnviz_lesson_json(server):
    model = server.models["bert"]
    response = _post(server, "api/lesson", {"model": model, "text": TEXT})
    assert response.status_code == 200, response.text
    served = response.json()
    done = invoke("lesson", TEXT, "-m", model, "--json")
    assert done.exit_code == 0, done.output
    assert _lesson_only(served) == json.loads(done.stdout)
    assert served["timing"]["computed_ms"] > 0 and served["lesson_ms"] > 0
    assert served["notes"] == []
    # kept for the pictures that follow: the same request again is not recomputed
    again = _post(server, "api/lesson", {"model": model, "text": TEXT}).json()
    assert again["lesson_ms"] is None and _lesson_only(again) == _lesson_only(served)


def test_step_four_follows_the_pages_layer_head_and_query(server, loaded_models):
    """The page's Layer and Head pickers and its query token choose step 4; its numbers are
    the head's own softmax(q.k / sqrt(d)), recomputed here from the weights."""
    import torch

    model = server.models["bert"]
    response = _post(server, "api/lesson", {"model": model, "text": TEXT, "layer": 1, "head": 2, "query": 3})
    assert response.status_code == 200, response.text
    data = response.json()["steps"][3]["data"]
    assert (data["layer"], data["head"], data["query"]) == (1, 2, 3)
    done = invoke("lesson", TEXT, "-m", model, "--json", "--layer", "1", "--head", "2", "--query", "3")
    assert _lesson_only(response.json()) == json.loads(done.stdout)

    bert = loaded_models["bert"].model
    ids = loaded_models["bert"].tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = bert(ids, output_hidden_states=True).hidden_states[1][0].double().numpy()
    attention = bert.encoder.layer[1].attention.self
    d = bert.config.hidden_size // bert.config.num_attention_heads
    part = slice(2 * d, 3 * d)

    def project(linear):
        return (hidden @ linear.weight.detach().double().numpy().T + linear.bias.detach().double().numpy())[:, part]

    q, k = project(attention.query)[3], project(attention.key)
    scores = k @ q / np.sqrt(d)
    weights = np.exp(scores - scores.max())
    np.testing.assert_allclose(data["weights"], weights / weights.sum(), atol=2e-4)
    np.testing.assert_allclose(data["dots"], k @ q, rtol=1e-3, atol=1e-3)


def test_pictures_one_step_at_a_time_and_kept_by_their_numbers(server):
    model = server.models["bert"]
    body = {"model": model, "text": TEXT, "layer": 0, "head": 0}
    first = _post(server, "api/lesson", {**body, "picture": 4}).json()
    assert first["step"] == 4 and first["picture"].startswith("data:image/png;base64,")
    import base64

    assert base64.b64decode(first["picture"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert first["picture_ms"] > 0
    # another head: step 4 is drawn again, step 3 (positions) is the same picture, not redrawn
    other = {**body, "head": 1}
    assert _post(server, "api/lesson", {**other, "picture": 4}).json()["picture"] != first["picture"]
    positions = [_post(server, "api/lesson", {**b, "picture": 3}).json() for b in (body, other)]
    assert positions[0]["picture"] == positions[1]["picture"] and positions[1]["picture_ms"] is None
    for bad in (1, 10, -1, "2"):
        refused = _post(server, "api/lesson", {**body, "picture": bad})
        assert refused.status_code == 400, bad


def test_errors_in_the_command_lines_words(server):
    model = server.models["bert"]
    out_of_range = _post(server, "api/lesson", {"model": model, "text": TEXT, "layer": 7})
    assert out_of_range.status_code == 400
    assert out_of_range.json()["error"] == "--layer 7 is out of range: there are 3 (0-2)"
    for value in (-1, True, "1", 1.5):
        bad = _post(server, "api/lesson", {"model": model, "text": TEXT, "head": value})
        assert bad.status_code == 400 and bad.json()["error"] == "head must be a non-negative integer", value
    too_long = _post(server, "api/lesson", {"model": model, "text": " ".join(["the"] * 60)})
    assert too_long.status_code == 400 and "more than the model's maximum of 48" in too_long.json()["error"]
    assert too_long.json()["hint"] == "shorten it: the server never cuts a text"
    pair = _post(server, "api/lesson", {"model": model, "text": TEXT, "pair": "a dog"})
    assert pair.status_code == 400 and pair.json()["error"] == "the lesson reads one text, not a sentence pair"
    assert _post(server, "api/lesson", {"model": model, "text": " "}).json()["error"] == "the text is empty"
    # a text the vocabulary does not cover is a lesson all the same, with the CLI's warning
    unknown = _post(server, "api/lesson", {"model": model, "text": "zzz qqq"}).json()
    assert unknown["notes"] == ["all 2 tokens of the text are [UNK] (outside the model's vocabulary)"]


def test_an_uncovered_layer_shape_is_said_in_one_line(server):
    response = _post(server, "api/lesson", {"model": server.models["gemma3"], "text": TEXT})
    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    for number in (6, 7, 8):
        assert not steps[number - 1]["applies"]
        assert steps[number - 1]["text"].startswith("Not read for this model: ")
        assert "'gemma3_text' layers have another shape" in steps[number - 1]["text"]
    assert all(steps[n - 1]["applies"] for n in (1, 2, 3, 4, 5, 9))
    # no picture for a step that does not apply: its sentence is the whole story
    picture = _post(server, "api/lesson", {"model": server.models["gemma3"], "text": TEXT, "picture": 7})
    assert picture.status_code == 200 and picture.json()["picture"] is None


def test_a_long_text_is_cut_to_the_lessons_length(loaded_models):
    """A served lesson reads the first LESSON_TOKENS tokens (here 8): the text is cut where
    its 7th token ends, and the drop is counted and said."""
    from attnviz.serve.lessons import LessonStore
    from attnviz.serve.pool import Query

    loaded = loaded_models["bert"]
    text = "the dog ran and the cats sat on the mat"
    pieces = loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer(text)["input_ids"])
    assert pieces[6:8] == ["cat", "##s"]  # the cut falls inside a word: "cats" loses its "s"
    document = LessonStore(loaded, limit=8).document(Query(text, task="lesson"))
    assert document["text"] == "the dog ran and the cat"
    assert [row["piece"] for row in document["steps"][0]["data"]["tokens"]] == [*pieces[:7], "[SEP]"]
    assert document["truncated_tokens"] == len(pieces) - 8
    assert document["notes"] == [
        f"the lesson reads the first 8 tokens: {len(pieces) - 8} tokens of the text were cut off "
        "(the other views read it whole; attnviz lesson reads up to the model's maximum)"
    ]


def test_stale_lesson_requests_are_dropped_in_order(server):
    """While the model is busy, a client's older lesson requests (and a picture it asked
    for) are answered 409 as soon as it sends a newer one; the newest is answered."""
    import httpx

    model = server.models["bert"]
    warm = server.warm["bert"]

    async def run():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            server.gate.clear()
            passes = warm._passes
            blocker = asyncio.ensure_future(http.post("api/attention", json={"model": model, "text": "gate"}))
            while warm._passes == passes or warm._queue:  # until the blocker is running
                await asyncio.sleep(0.01)
            requests = []
            for seq, extra in ((1, {}), (2, {"picture": 2}), (3, {})):
                arrived = warm._next
                body = {"model": model, "text": f"the cat sat {seq}", "client": "typist", "seq": seq, **extra}
                requests.append(asyncio.ensure_future(http.post("api/lesson", json=body)))
                while warm._next == arrived:  # queued before the next one is sent
                    await asyncio.sleep(0.01)
            late = await http.post("api/lesson", json={"model": model, "text": "late", "client": "typist", "seq": 2})
            server.gate.set()
            return await blocker, await asyncio.gather(*requests), late

    blocker, answers, late = asyncio.run(run())
    assert blocker.status_code == 200
    assert [a.status_code for a in answers] == [409, 409, 200]
    assert answers[0].json()["stale"] and answers[1].json()["stale"]
    assert (
        answers[2].json()["text"] == "the cat sat 3" and answers[2].json()["timing"]["passes_waited"] == 0
    )  # no pass for the dropped ones
    assert late.status_code == 409  # arrived after seq 3: stale at once


def test_attribution_takes_the_pair(server):
    model = server.models["bert"]
    response = _post(server, "api/attribution", {"model": model, "text": "the cat sat", "pair": "a dog ran"})
    assert response.status_code == 200, response.text
    served = response.json()
    assert served["tokens"] == ["[CLS]", "the", "cat", "sat", "[SEP]", "a", "dog", "ran", "[SEP]"]
    assert served["segments"] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    methods = sum((["--method", m] for m in served["methods"]), [])
    done = invoke("attribute", "the cat sat", "--pair", "a dog ran", "-m", model, "--json", *methods)
    assert done.exit_code == 0, done.output
    expected = json.loads(done.stdout)
    assert served["tokens"] == expected["tokens"] and served["meta"]["pair"] == "a dog ran"
    for got, want in zip(served["scores"], expected["scores"]):
        assert [g is None for g in got] == [w is None for w in want]
        np.testing.assert_allclose([g for g in got if g is not None], [w for w in want if w is not None], atol=1e-5)


# -- the page in Chromium ------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
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
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.on("request", lambda request: requests.append(request.url))
    yield opened
    context.close()
    assert errors == []
    assert all(url.startswith(server.url) for url in requests), requests


def _steps(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#lesson-steps > li",
        """items => items.map(li => ({step: Number(li.dataset.step), applies: li.dataset.applies === '1',
             text: li.querySelector('p.sentences').textContent,
             images: [...li.querySelectorAll('img')].map(i => i.complete && i.naturalWidth > 0)}))""",
    )


def _served_texts(server, model: str, text: str, **extra) -> list[str]:
    return [s["text"] for s in _post(server, "api/lesson", {"model": model, "text": text, **extra}).json()["steps"]]


@pytest.mark.browser
def test_typing_shows_the_lesson_and_a_link_reopens_it(page, server):
    model = server.models["bert"]
    hostile = 'the cat <img src=x onerror="window.__pwned=1">'
    page.goto(f"{server.url}?model={quote(model)}&text={quote(hostile)}&view=lesson")
    page.wait_for_selector("body[data-lessons='1']", timeout=30000)
    assert [s["text"] for s in _steps(page)] == _served_texts(server, model, hostile)  # text, not markup
    page.locator("#text").fill(TEXT)
    page.wait_for_selector("body[data-lessons='2']", timeout=30000)
    page.wait_for_selector("body[data-pictures-done='1']", timeout=60000)
    steps = _steps(page)
    assert [s["step"] for s in steps] == list(range(1, 10))
    assert steps[0]["text"].startswith("The text becomes 8 tokens")
    assert page.locator("#lesson-step-1 table tbody tr").count() == 8
    for s in steps[1:]:
        assert s["images"] == [True], s  # every step of BERT applies and has its picture
    layer, head = page.locator("#layer").input_value(), page.locator("#head").input_value()
    assert f"Layer {layer}, head {head} " in steps[3]["text"]
    # step 4 follows the Head picker, and the link keeps the view, the layer and the head
    other = "1" if head != "1" else "2"
    page.select_option("#head", other)
    page.wait_for_selector("body[data-lessons='3']", timeout=30000)
    assert f"Layer {layer}, head {other} " in _steps(page)[3]["text"]
    link = page.url
    assert "view=lesson" in link and f"head={other}" in link and f"layer={layer}" in link
    page.goto(link)
    page.wait_for_selector("body[data-lessons='1']", timeout=30000)
    assert page.locator("#lesson-view").is_visible() and page.locator("#view").input_value() == "lesson"
    assert [s["text"] for s in _steps(page)] == _served_texts(server, model, TEXT, layer=int(layer), head=int(other))
    assert page.evaluate("window.__pwned") is None


@pytest.mark.browser
def test_an_uncovered_model_and_the_pair_in_the_attribution_view(page, server):
    page.goto(f"{server.url}?model={quote(server.models['gemma3'])}&text={quote(TEXT)}&view=lesson")
    page.wait_for_selector("body[data-lessons='1']", timeout=30000)
    page.wait_for_selector("body[data-pictures-done='1']", timeout=60000)
    steps = {s["step"]: s for s in _steps(page)}
    for number in (6, 7, 8):  # one line each, no picture
        assert not steps[number]["applies"] and steps[number]["images"] == []
        assert steps[number]["text"].startswith("Not read for this model: ")
    assert page.locator("#lesson-step-7.skipped").is_visible()
    # the attribution view scores an encoder's pair: the pair box adds its tokens
    page.goto(f"{server.url}?model={quote(server.models['bert'])}&text=the+cat+sat&view=attribute")
    page.wait_for_selector("body[data-seq='1']", timeout=30000)
    header = page.locator("#attribute-table thead th")
    assert header.all_inner_texts()[1:] == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    page.locator("#pair").fill("a dog ran")
    page.wait_for_selector("body[data-seq='2']", timeout=30000)
    assert header.all_inner_texts()[1:] == ["[CLS]", "the", "cat", "sat", "[SEP]", "a", "dog", "ran", "[SEP]"]
    assert page.locator("#attribute-table thead th.second").all_inner_texts() == ["a", "dog", "ran", "[SEP]"]
    assert "pair=a+dog+ran" in page.url
