"""`attnviz lesson`: every number against an independent computation from the weights
(hand-written forwards of one BERT and one Llama layer), the sentences on tiny models of
every kind, the terminal at 80 columns, the outputs, and the page in Chromium."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke

from attnviz.lesson import build_lesson

TEXT = "the cat sat on the mat"
KINDS = ("bert", "distilbert", "roberta", "gpt2", "bart", "t5", "llama")


def close(value, expected, tol=2e-4):
    """The lesson's data are rounded to 4 decimals."""
    np.testing.assert_allclose(np.asarray(value, float), np.asarray(expected, float), rtol=1e-3, atol=tol)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    """Tiny Llama, GPT-NeoX and Gemma 3 (layer shapes the recipes do not cover) and gpt-oss
    (attention sinks, mixture of experts) from tests/families.py."""
    from families import build

    from attnviz.models import load_model

    root = tmp_path_factory.mktemp("lesson-families")
    return {
        name: load_model(str(build(name, root)), device="cpu") for name in ("llama", "gpt_neox", "gemma3", "gpt_oss")
    }


@pytest.fixture(scope="module")
def lessons(loaded_models, family_models):
    models = {**loaded_models, "llama": family_models["llama"]}
    return {name: build_lesson(TEXT, model=models[name]) for name in KINDS}


def step(lesson, number):
    return lesson.steps[number - 1]


def layer_rows(lesson, number, kind):
    return step(lesson, number).data["layers"][kind]


def as_numpy(tensor):
    return tensor.detach().double().numpy()


# -- embeddings and positions -----------------------------------------------------------
def test_embedding_similarities_and_neighbours_from_the_matrix(lessons, loaded_models):
    lesson = lessons["bert"]
    tokenizer = loaded_models["bert"].tokenizer
    table = as_numpy(loaded_models["bert"].model.embeddings.word_embeddings.weight)
    ids = tokenizer(TEXT)["input_ids"]
    vectors = table[ids]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    data = step(lesson, 2).data
    close(data["similarity"], unit @ unit.T)
    specials = set(tokenizer.all_special_ids)
    for entry in data["neighbours"]:
        token_id = ids[entry["index"]]
        cosines = []
        for other in range(len(table)):
            if other == token_id or other in specials:
                continue
            a, b = table[token_id], table[other]
            cosines.append((float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), other))
        expected = [other for _, other in sorted(cosines, key=lambda c: (-c[0], c[1]))[:5]]
        assert [n["id"] for n in entry["neighbours"]] == expected
        close([n["cosine"] for n in entry["neighbours"]], [c for c, _ in sorted(cosines, reverse=True)[:5]])
    best = data["neighbours"][-1]
    assert f"'{best['token']}' is closest to '{best['neighbours'][0]['token']}'" in " ".join(step(lesson, 2).sentences)


def test_learned_position_similarities(lessons, loaded_models):
    table = as_numpy(loaded_models["bert"].model.embeddings.position_embeddings.weight)[:64]
    data = step(lessons["bert"], 3).data
    assert data["kind"] == "learned absolute"
    norms = np.linalg.norm(table, axis=1)
    close(data["similarity"], (table @ table.T) / np.outer(norms, norms))
    close(
        data["by_distance"][1],
        np.mean([table[i] @ table[i + 1] / norms[i] / norms[i + 1] for i in range(len(table) - 1)]),
    )


def test_gpt2_positions_come_from_wpe_and_roberta_skips_its_padding_offset(lessons, loaded_models):
    wpe = as_numpy(loaded_models["gpt2"].model.wpe.weight)
    unit = wpe / np.linalg.norm(wpe, axis=1, keepdims=True)
    close(step(lessons["gpt2"], 3).data["similarity"], (unit @ unit.T)[:64, :64])
    table = as_numpy(loaded_models["roberta"].model.embeddings.position_embeddings.weight)
    start = loaded_models["roberta"].model.config.pad_token_id + 1
    unit = table[start : start + 64] / np.linalg.norm(table[start : start + 64], axis=1, keepdims=True)
    close(step(lessons["roberta"], 3).data["similarity"], unit @ unit.T)


def test_rotary_scores_by_explicit_rotation(lessons, family_models):
    config = family_models["llama"].model.config
    head_dim = config.hidden_size // config.num_attention_heads
    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    vector = np.ones(head_dim) / np.sqrt(head_dim)

    def rotate(x, position):  # transformers' convention: halves, not interleaved pairs
        angles = np.concatenate([position * inv_freq, position * inv_freq])
        half = np.concatenate([-x[head_dim // 2 :], x[: head_dim // 2]])
        return x * np.cos(angles) + half * np.sin(angles)

    data = step(lessons["llama"], 3).data
    assert data["kind"] == "rotary"
    for distance in (0, 1, 4, 17, 32):
        close(data["scores"][distance], rotate(vector, 40 + distance) @ rotate(vector, 40))


def test_t5_relative_bias_at_distance_zero_is_bucket_zero(lessons, loaded_models):
    attention = loaded_models["t5"].model.encoder.block[0].layer[0].SelfAttention
    data = step(lessons["t5"], 3).data
    middle = data["distances"].index(0)
    close(np.asarray(data["bias"])[:, middle], as_numpy(attention.relative_attention_bias.weight)[0])
    assert "bias" in step(lessons["t5"], 3).sentences[0]


# -- hand-written layers ------------------------------------------------------------------
def _softmax(scores):
    scores = scores - scores.max(-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(-1, keepdims=True)


def _hidden_states(loaded, ids):
    import torch

    with torch.no_grad():
        return [as_numpy(h[0]) for h in loaded.model(torch.tensor([ids]), output_hidden_states=True).hidden_states]


def _layer_norm(x, module):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + module.eps) * as_numpy(module.weight) + as_numpy(module.bias)


def _linear(x, module):
    out = x @ as_numpy(module.weight).T
    return out + as_numpy(module.bias) if module.bias is not None else out


def _contributions(weights, values, projection):
    """[T, T, D]: what key j sends to query i, summed over heads (no output bias)."""
    heads, _, d = values.shape
    out = 0
    for h in range(heads):
        sent = values[h] @ projection[:, h * d : (h + 1) * d].T  # [T, D]
        out = out + weights[h][:, :, None] * sent[None, :, :]
    return out


def _check_mixing(rows, x, contributions, post_norm=None):
    tokens = len(x)
    own = np.stack([contributions[i, i] for i in range(tokens)])
    others = np.stack([sum(contributions[i, j] for j in range(tokens) if j != i) for i in range(tokens)])
    preserved = x + own
    if post_norm is not None:
        total, module = post_norm
        scale = np.sqrt(total.var(-1, keepdims=True) + module.eps)
        gamma = as_numpy(module.weight)
        preserved = gamma * (preserved - preserved.mean(-1, keepdims=True)) / scale
        others = gamma * (others - others.mean(-1, keepdims=True)) / scale
    p, m = np.linalg.norm(preserved, axis=-1), np.linalg.norm(others, axis=-1)
    close(rows["preserved"], p)
    close(rows["mixed"], m)
    close(rows["ratio"], m / (m + p))


@pytest.mark.parametrize("layer", [0, 2])
def test_bert_layer_by_hand(lessons, loaded_models, layer):
    """Post-norm: h = LN(x + Attn(x)), y = LN(h + FFN(h))."""
    from scipy.special import erf

    loaded, lesson = loaded_models["bert"], lessons["bert"]
    ids = loaded.tokenizer(TEXT)["input_ids"]
    states = _hidden_states(loaded, ids)
    x = states[layer]
    module = loaded.model.encoder.layer[layer]
    config = loaded.model.config
    heads, d = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    tokens = len(ids)

    def split(t):
        return t.reshape(tokens, heads, d).transpose(1, 0, 2)

    attention = module.attention.self
    q, k, v = (split(_linear(x, m)) for m in (attention.query, attention.key, attention.value))
    weights = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(d))
    context = (weights @ v).transpose(1, 0, 2).reshape(tokens, -1)
    update = _linear(context, module.attention.output.dense)
    z = x + update
    h = _layer_norm(z, module.attention.output.LayerNorm)
    inner = _linear(h, module.intermediate.dense)
    ffn = _linear(0.5 * inner * (1 + erf(inner / np.sqrt(2))), module.output.dense)
    y = _layer_norm(h + ffn, module.output.LayerNorm)
    close(y, states[layer + 1], 1e-4)  # the hand-written layer is the model's

    ff = layer_rows(lesson, 6, "encoder")[layer]
    close(ff["update"], np.linalg.norm(ffn, axis=-1))
    close(ff["residual"], np.linalg.norm(h, axis=-1))
    close(ff["ratio"], np.linalg.norm(ffn, axis=-1) / np.linalg.norm(h, axis=-1))
    query = lesson.capture.query
    top = np.argsort(-(0.5 * inner * (1 + erf(inner / np.sqrt(2))))[query])[:3]
    assert [n["neuron"] for n in ff["top_neurons"]] == top.tolist()

    norms = layer_rows(lesson, 8, "encoder")[layer]
    close(norms["attn_norm_in"], np.linalg.norm(z, axis=-1))
    close(norms["attn_norm_out"], np.linalg.norm(h, axis=-1))
    close(norms["ffn_norm_in"], np.linalg.norm(h + ffn, axis=-1))
    close(norms["ffn_norm_out"], np.linalg.norm(y, axis=-1))
    assert step(lesson, 8).data["placement"] == "post"

    rows = layer_rows(lesson, 7, "encoder")[layer]
    close(rows["residual"], np.linalg.norm(x, axis=-1))
    projection = as_numpy(module.attention.output.dense.weight)
    _check_mixing(rows, x, _contributions(weights, v, projection), (z, module.attention.output.LayerNorm))


def test_llama_layer_by_hand(lessons, family_models):
    """Pre-norm with RMSNorm, rotary, grouped keys and values, causal mask."""
    loaded, lesson = family_models["llama"], lessons["llama"]
    config = loaded.model.config
    ids = lesson.capture.ids
    states = _hidden_states(loaded, ids)
    layer = 0  # the last layer's hidden state is after the final norm
    x = states[layer]
    module = loaded.model.layers[layer]
    heads, groups = config.num_attention_heads, config.num_key_value_heads
    d = config.hidden_size // heads
    tokens = len(ids)

    def rms(t, norm):
        return t / np.sqrt((t**2).mean(-1, keepdims=True) + norm.variance_epsilon) * as_numpy(norm.weight)

    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2) / d)
    angles = np.arange(tokens)[:, None] * np.concatenate([inv_freq, inv_freq])[None, :]

    def rope(t):  # [heads, T, d]
        half = np.concatenate([-t[..., d // 2 :], t[..., : d // 2]], axis=-1)
        return t * np.cos(angles) + half * np.sin(angles)

    attention = module.self_attn
    normed = rms(x, module.input_layernorm)
    q = rope(_linear(normed, attention.q_proj).reshape(tokens, heads, d).transpose(1, 0, 2))
    k = rope(_linear(normed, attention.k_proj).reshape(tokens, groups, d).transpose(1, 0, 2))
    v = _linear(normed, attention.v_proj).reshape(tokens, groups, d).transpose(1, 0, 2)
    k, v = np.repeat(k, heads // groups, axis=0), np.repeat(v, heads // groups, axis=0)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d) + np.triu(np.full((tokens, tokens), -np.inf), 1)
    weights = _softmax(scores)
    update = _linear((weights @ v).transpose(1, 0, 2).reshape(tokens, -1), attention.o_proj)
    z = x + update
    normed2 = rms(z, module.post_attention_layernorm)
    mlp = module.mlp
    gate = _linear(normed2, mlp.gate_proj)
    act = gate / (1 + np.exp(-gate)) * _linear(normed2, mlp.up_proj)
    ffn = _linear(act, mlp.down_proj)
    close(z + ffn, states[layer + 1], 1e-5)

    ff = layer_rows(lesson, 6, "decoder")[layer]
    close(ff["update"], np.linalg.norm(ffn, axis=-1))
    close(ff["residual"], np.linalg.norm(z, axis=-1))
    assert [n["neuron"] for n in ff["top_neurons"]] == np.argsort(-act[lesson.capture.query])[:3].tolist()

    norms = layer_rows(lesson, 8, "decoder")[layer]
    close(norms["attn_norm_in"], np.linalg.norm(x, axis=-1))
    close(norms["attn_norm_out"], np.linalg.norm(normed, axis=-1))
    close(norms["ffn_norm_in"], np.linalg.norm(z, axis=-1))
    close(norms["ffn_norm_out"], np.linalg.norm(normed2, axis=-1))
    assert step(lesson, 8).data["placement"] == "pre"

    rows = layer_rows(lesson, 7, "decoder")[layer]
    _check_mixing(rows, x, _contributions(weights, v, as_numpy(attention.o_proj.weight)))
    assert rows["ratio"][0] == 0.0  # the first token can only attend to itself


def test_self_attention_arithmetic_matches_the_model(lessons, loaded_models):
    """Step 4: q.k, the scaling and the softmax, from the head's own query and key weights."""
    loaded, lesson = loaded_models["bert"], lessons["bert"]
    data = step(lesson, 4).data
    config = loaded.model.config
    d = config.hidden_size // config.num_attention_heads
    ids = lesson.capture.ids
    x = _hidden_states(loaded, ids)[data["layer"]]
    attention = loaded.model.encoder.layer[data["layer"]].attention.self
    part = slice(data["head"] * d, (data["head"] + 1) * d)
    q = _linear(x, attention.query)[:, part][data["query"]]
    k = _linear(x, attention.key)[:, part]
    close(data["dots"], k @ q, 1e-3)
    close(data["scaling"], 1 / np.sqrt(d))
    close(data["weights"], _softmax(k @ q / np.sqrt(d)))
    assert data["label"] == str(lesson.capture.labels[data["layer"], data["head"]])


# -- sentences, for every kind -----------------------------------------------------------
@pytest.mark.parametrize("name", KINDS)
def test_sentences_hold_for_every_kind(lessons, loaded_models, family_models, name):
    lesson = lessons[name]
    loaded = {**loaded_models, **family_models}[name]
    assert [s.number for s in lesson.steps] == list(range(1, 10))
    for s in lesson.steps:
        assert s.sentences and all(sentence.strip() for sentence in s.sentences)
        assert s.applies, (name, s.number, s.sentences)
    ids = loaded.tokenizer(TEXT)["input_ids"]
    assert step(lesson, 1).sentences[0].startswith(f"The text becomes {len(ids)} tokens")
    positions = step(lesson, 3)
    expected_kind = {"t5": "relative bias", "llama": "rotary"}.get(name, "learned absolute")
    assert positions.data["kind"] == expected_kind
    masks = " ".join(step(lesson, 9).sentences)
    if loaded.family == "decoder":
        assert "causal mask" in masks and "no cross-attention" in masks.lower().replace("there is no", "no")
    elif loaded.family == "encoder":
        assert "full mask" in masks and "causal" not in masks
    else:
        assert "full mask" in masks and "causal mask" in masks and "cross-attention" in masks
    residual = step(lesson, 7)
    rows = residual.data["layers"][residual.data["kind"]]
    middle = rows[len(rows) // 2]
    assert (
        f"layer {middle['layer']} the residual stream carries {1 - middle['mean_ratio']:.0%}" in residual.sentences[0]
    )
    ff = step(lesson, 6)
    biggest = max(ff.data["layers"][ff.data["kind"]], key=lambda r: r["mean_ratio"])
    assert f"layer {biggest['layer']} ({biggest['mean_ratio']:.2f}x" in ff.sentences[0]
    heads = step(lesson, 5).data["labels"]
    assert f"the {len(heads) * len(heads[0])} heads are" in step(lesson, 5).sentences[0]


@pytest.mark.parametrize("name", ["bert", "t5", "llama"])
def test_terminal_fits_80_columns(lessons, name):
    from rich.console import Console

    from attnviz.lesson.terminal import print_lesson, print_overview

    buffer = io.StringIO()
    print_lesson(lessons[name], Console(file=buffer, width=80, force_terminal=True, color_system=None))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    for number in range(1, 10):
        assert any(line.startswith(f"{number}/9") for line in lines)
    assert [line for line in lines if line.endswith(" ")] == []  # wrapped and table lines too
    buffer = io.StringIO()
    print_overview(lessons[name], Console(file=buffer, width=80, force_terminal=True, color_system=None))
    assert [line for line in buffer.getvalue().splitlines() if line.endswith(" ")] == []


def test_wording_says_things_once(loaded_models):
    lesson = build_lesson("the cat sat", model=loaded_models["bert"])  # three whole-word tokens
    assert step(lesson, 1).sentences[-1] == "Every word here is one token."
    for name in ("bert", "gpt2"):
        text = " ".join(step(build_lesson(TEXT, model=loaded_models[name]), 8).sentences)
        assert text.count("post-norm") + text.count("pre-norm") == 1, text


@pytest.mark.parametrize("name", ["gpt_neox", "gemma3"])
def test_an_uncovered_layer_shape_says_so_in_one_line(family_models, name):
    from rich.console import Console

    from attnviz.lesson.terminal import print_lesson

    lesson = build_lesson(TEXT, model=family_models[name])
    for number in (6, 7, 8):
        s = step(lesson, number)
        assert not s.applies and len(s.sentences) == 1 and s.sentences[0].startswith("Not read for this model")
    for number in (1, 2, 3, 4, 5, 9):  # the rest of the lesson is still there
        assert step(lesson, number).applies
    assert step(lesson, 3).data["kind"] == "rotary"
    buffer = io.StringIO()
    print_lesson(lesson, Console(file=buffer, width=80, color_system=None))
    assert buffer.getvalue().count("Not read for this model") == 3


def test_long_texts_cluster_heads_over_their_first_tokens(family_models):
    from attnviz.lesson.collect import CLUSTER_TOKENS

    lesson = build_lesson(" ".join(["the cat sat on the mat"] * 30), model=family_models["llama"])
    assert len(lesson.capture.result.tokens) > CLUSTER_TOKENS
    heads = step(lesson, 5)
    assert heads.data["clusters_over_tokens"] == CLUSTER_TOKENS
    assert f"(compared over the first {CLUSTER_TOKENS} tokens)" in heads.sentences[1]


def test_sinks_and_experts_gpt_oss(family_models):
    """Rows that sum to less than 1 are said so; a mixture of experts has no top neurons."""
    lesson = build_lesson(TEXT, model=family_models["gpt_oss"])
    data = step(lesson, 4).data
    total = float(np.sum(data["weights"]))
    assert total < 0.99
    assert f"sum to {total:.2f} (the rest goes to the head's learned sink)" in step(lesson, 4).sentences[1]
    assert step(lesson, 7).applies and step(lesson, 8).data["placement"] == "pre"
    rows = layer_rows(lesson, 6, "decoder")
    assert rows and all(r["top_neurons"] == [] and r["width"] is None for r in rows)


# -- command line -------------------------------------------------------------------------
def test_cli_json_and_png_folder(tiny_models, tmp_path):
    folder = tmp_path / "steps"
    result = invoke("lesson", TEXT, "-m", tiny_models["bert"], "--json", "-o", f"{folder}/")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "attnviz-lesson/1"
    assert [s["step"] for s in document["steps"]] == list(range(1, 10))
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 9
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000 for p in pngs)


def test_cli_warns_once_when_the_text_is_cut(tiny_models):
    from transformers import AutoTokenizer

    long_text = " ".join(["the cat sat on the mat"] * 12)
    full = len(AutoTokenizer.from_pretrained(str(tiny_models["bert"]))(long_text)["input_ids"])
    dropped = full - 48  # the tiny BERT's max_position_embeddings
    assert dropped > 0
    result = invoke("lesson", long_text, "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("the input was cut") == 1
    assert f"({dropped} tokens dropped)" in result.stderr
    assert json.loads(result.stdout)["truncated_tokens"] == dropped
    short = invoke("lesson", TEXT, "-m", tiny_models["bert"], "--json")
    assert "cut" not in short.stderr and json.loads(short.stdout)["truncated_tokens"] == 0


def test_cli_step_shows_one_step(tiny_models):
    result = invoke("lesson", TEXT, "-m", tiny_models["gpt2"], "--step", "9")
    assert result.exit_code == 0, result.output
    assert "9/9  Encoder and decoder" in result.stdout and "8/9" not in result.stdout
    assert "causal" in result.stdout


@pytest.mark.parametrize(
    "args",
    [["-o", "lesson.txt"], ["--step", "10"], ["--step", "2", "--all"], ["--query", "99"]],
)
def test_cli_bad_usage_is_one_error_line(tiny_models, tmp_path, args):
    result = invoke(
        "lesson", TEXT, "-m", tiny_models["bert"], *[str(tmp_path / a) if a.endswith(".txt") else a for a in args]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_hostile_text_is_escaped_in_the_terminal(tiny_models):
    result = invoke("lesson", "the cat \x1b[31m sat \u202e", "-m", tiny_models["bert"], "--all")
    assert result.exit_code == 0, result.output
    assert "\x1b[31m" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b" in result.stdout


# -- the page -------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("name", ["t5"])  # encoder, decoder and cross-attention in one page
def test_page_in_chromium(loaded_models, browser, tmp_path, name):
    from attnviz.lesson.page import render_lesson_page

    text = 'the cat <script>window.__pwned = 1</script> sat <img src=x onerror="window.__pwned=2">'
    lesson = build_lesson(text, model=loaded_models[name])
    path = tmp_path / "lesson.html"
    path.write_text(render_lesson_page(lesson), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    requests, errors = [], []
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    sections = page.eval_on_selector_all(
        "section.step",
        """els => els.map(s => ({id: s.id, text: s.querySelector('p.sentences').textContent,
             height: s.getBoundingClientRect().height,
             images: [...s.querySelectorAll('img')].map(i => i.complete && i.naturalWidth > 0),
             tables: s.querySelectorAll('table').length}))""",
    )
    assert [s["id"] for s in sections] == [f"step-{n}" for n in range(1, 10)]
    for section, built in zip(sections, lesson.steps):
        assert section["text"] == " ".join(built.sentences)  # the text, escaped, not markup
        assert section["height"] > 100
        assert all(section["images"]) and (section["images"] or section["tables"])
    frames = page.frames[1:]
    assert len(frames) == 2  # steps 4 and 5 embed the interactive view
    for frame in frames:
        frame.wait_for_selector("body[data-ready='1']", timeout=15000)
        shown = frame.evaluate(
            """[document.getElementById('status').hidden,
                [...document.querySelectorAll('main > section')].filter(s => !s.hidden).length,
                Math.max(document.querySelectorAll('#left li').length,
                         document.querySelectorAll('#neuron-queries li').length)]"""
        )
        assert shown == [True, 1, len(lesson.capture.result.tokens)]
    page.wait_for_timeout(300)  # a redraw after the frames settle would show up as an error
    assert page.evaluate("window.__pwned") is None
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))] == []
    context.close()


def test_nearest_neighbours_keep_ties_in_id_order_and_repeat_for_repeated_tokens():
    """Against a full sort of every row: exact ties (duplicate rows) come lower id first,
    a repeated token gets the same answer, excluded ids and the token itself never appear."""
    from attnviz.lesson.model import nearest_neighbours

    rng = np.random.default_rng(3)
    table = rng.normal(size=(400, 8))
    table[10] = table[11] = table[12] = table[5] * 2.0  # three exact ties with token 5's direction
    ids, exclude = [5, 7, 5, 300, 11], [12, 0]
    got = nearest_neighbours(table, ids, exclude, top=4)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    for token, near in zip(ids, got):
        sims = unit @ unit[token]
        sims[exclude] = -np.inf
        sims[token] = -np.inf
        order = sorted(range(len(table)), key=lambda i: (-sims[i], i))[:4]
        assert [i for i, _ in near] == order
        np.testing.assert_allclose([c for _, c in near], sims[order], rtol=1e-12)
    assert got[0] == got[2] and [i for i, _ in got[0]][:2] == [10, 11]
