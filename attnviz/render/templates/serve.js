"use strict";
// The served page (`attnviz serve`): text boxes and a model picker in front of page.js.
// Typing asks the server after a short pause; the address bar keeps the state.
(() => {
  const page = window.attnvizPage;
  if (!page) return;
  const $ = (id) => document.getElementById(id);
  const SERVE = page.data().serve;
  const DEBOUNCE_MS = SERVE.debounce_ms;
  const client = (self.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);
  const models = Object.fromEntries(SERVE.models.map((m) => [m.name, m]));
  let sent = 0;          // the sequence number of the newest request
  let shown = 0;         // the sequence number of the answer on screen
  let timer = null;
  let typedAt = null;    // when the debounce fired for the newest request
  let hasVectors = false;

  function setStatus(text, isError = false) {
    $("serve-status").textContent = text || "\u00a0";
    $("serve-status").classList.toggle("error", isError);
  }

  function fillModels(chosen) {
    $("model").replaceChildren(...SERVE.models.map((m) => {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (${m.family})`;
      return option;
    }));
    $("model").value = models[chosen] ? chosen : SERVE.models[0].name;
    if (SERVE.failed.length) {
      $("failed").hidden = false;
      $("failed").textContent = "Not loaded: " + SERVE.failed.map((f) => `${f.name}: ${f.error}`).join("; ");
    }
  }

  function boxes() {
    const m = models[$("model").value];
    $("pair-label").hidden = !m.pair;
    $("target-label").hidden = !m.target;
  }

  function request(vectors) {
    const m = models[$("model").value];
    const body = { model: m.name, text: $("text").value, client, seq: 0, vectors };
    if (m.pair && $("pair").value.trim()) body.pair = $("pair").value;
    if (m.target && $("target").value.trim()) body.target = $("target").value;
    return body;
  }

  // -- the address bar: text, pair, target, model, view, kind, layer, head -------------------
  function writeURL() {
    const params = new URLSearchParams();
    params.set("model", $("model").value);
    params.set("text", $("text").value);
    if (!$("pair-label").hidden && $("pair").value) params.set("pair", $("pair").value);
    if (!$("target-label").hidden && $("target").value) params.set("target", $("target").value);
    const s = page.state;
    params.set("view", s.view);
    if (s.kind) params.set("kind", s.kind);
    params.set("layer", String(s.layer));
    params.set("head", String(s.head));
    if (s.scale) params.set("scale", s.scale);
    const url = `${location.pathname}?${params}`;
    if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  }

  function readURL() {
    const params = new URLSearchParams(location.search);
    fillModels(params.get("model"));
    boxes();
    $("text").value = params.get("text") || "";
    $("pair").value = params.get("pair") || "";
    $("target").value = params.get("target") || "";
    const s = page.state;
    const view = params.get("view");
    if (view && $("view").querySelector(`option[value="${CSS.escape(view)}"]`)) { s.view = view; $("view").value = view; }
    if (params.get("kind")) s.kind = params.get("kind");
    const layer = Number(params.get("layer"));
    if (Number.isInteger(layer) && layer >= 0) s.layer = layer;
    // a link that names a layer or head opens on it, not on the page's own choice
    s.pinned = params.has("layer") || params.has("head");
    if (params.get("scale") === "full" || params.get("scale") === "keys") { s.scale = params.get("scale"); $("scale-mode").value = s.scale; }
    const head = params.get("head");
    if (head === "all" || head === "mean") s.head = head;
    else if (head !== null && /^\d+$/.test(head)) s.head = Number(head);
  }

  // -- asking the server ------------------------------------------------------------------
  async function update() {
    timer = null;
    const body = request(page.state.view === "neuron");
    if (!body.text.trim()) { setStatus("type some text"); writeURL(); return; }
    body.seq = ++sent;
    typedAt = performance.now();
    const started = typedAt;
    setStatus("…");
    let response, document_;
    try {
      response = await fetch("api/attention", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      document_ = await response.json();
    } catch (error) {
      if (body.seq === sent) setStatus(`the server did not answer: ${error.message || error}`, true);
      return;
    }
    if (response.status === 409 || body.seq <= shown) return;   // replaced by a newer request
    if (!response.ok) {
      if (body.seq !== sent) return;
      setStatus(`error: ${document_.error}${document_.hint ? ` (${document_.hint})` : ""}`, true);
      document.body.dataset.error = document_.error;
      return;
    }
    shown = body.seq;
    hasVectors = body.vectors;
    delete document.body.dataset.error;
    await page.load(document_);
    const ms = performance.now() - started;
    document.body.dataset.seq = String(shown);
    document.body.dataset.drawMs = ms.toFixed(1);
    const t = document_.timing || {};
    document.body.dataset.forwardMs = String(t.forward_ms ?? "");
    setStatus(`drawn ${ms.toFixed(0)} ms after the pause (forward pass ${Number(t.forward_ms || 0).toFixed(0)} ms)`);
    writeURL();
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(update, DEBOUNCE_MS);
  }

  page.changed = () => {
    writeURL();
    // the neuron view needs the query and key vectors, which only it asks for
    if (page.state.view === "neuron" && !hasVectors && timer === null) update();
  };

  readURL();
  for (const id of ["text", "pair", "target"]) $(id).addEventListener("input", schedule);
  $("model").addEventListener("change", () => { boxes(); clearTimeout(timer); update(); });
  $("serve").addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(timer); update(); });
  update();
})();
