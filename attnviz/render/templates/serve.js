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
  const shownKey = { attention: null, attribution: null };   // what each kind of answer on screen was for
  let pendingKey = null;

  // the attribution view (`attnviz attribute`'s live methods): served pages only
  const attributeOption = document.createElement("option");
  attributeOption.value = "attribute";
  attributeOption.textContent = "Attribution (which tokens matter)";
  $("view").append(attributeOption);
  document.querySelector("main").append($("attribute-template").content.cloneNode(true));
  const taskOf = () => (page.state.view === "attribute" ? "attribution" : "attention");

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

  function request(vectors, task) {
    const m = models[$("model").value];
    const body = { model: m.name, text: $("text").value, client, seq: 0, vectors };
    if (m.pair && task === "attention" && $("pair").value.trim()) body.pair = $("pair").value;
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
  // what an answer is for, vectors aside: the model and the texts
  const keyOf = (body, task) => JSON.stringify([task, body.model, body.text, body.pair || null, body.target || null]);

  async function update() {
    timer = null;
    const task = taskOf();
    const body = request(page.state.view === "neuron", task);
    if (!body.text.trim()) { setStatus("type some text"); writeURL(); return; }
    const key = keyOf(body, task);
    pendingKey = key + (body.vectors ? "+vectors" : "");
    body.seq = ++sent;
    typedAt = performance.now();
    const started = typedAt;
    setStatus("…");
    let response, document_;
    try {
      response = await fetch(task === "attribution" ? "api/attribution" : "api/attention", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      document_ = await response.json();
    } catch (error) {
      if (body.seq === sent) { pendingKey = null; setStatus(`the server did not answer: ${error.message || error}`, true); }
      return;
    }
    if (body.seq === sent) pendingKey = null;
    if (response.status === 409 || body.seq <= shown) return;   // replaced by a newer request
    if (!response.ok) {
      if (body.seq !== sent) return;
      setStatus(`error: ${document_.error}${document_.hint ? ` (${document_.hint})` : ""}`, true);
      document.body.dataset.error = document_.error;
      return;
    }
    shown = body.seq;
    delete document.body.dataset.error;
    shownKey[task] = key;
    if (task === "attribution") {
      drawAttribution(document_);
    } else {
      hasVectors = body.vectors;
      await page.load(document_);
    }
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

  // After a view change: ask again when what is on screen is not for the current text, or
  // the neuron view needs the query and key vectors, which only it asks for.
  function refreshIfStale() {
    if (timer !== null) return;
    const task = taskOf();
    const body = request(page.state.view === "neuron", task);
    if (!body.text.trim()) return;
    const key = keyOf(body, task);
    const wanted = key + (body.vectors ? "+vectors" : "");
    const current = shownKey[task] === key && (task === "attribution" || !body.vectors || hasVectors);
    if (!current && pendingKey !== wanted) update();
    else if (task === "attribution" && current) showAttributionOnly();
  }

  page.changed = () => { writeURL(); refreshIfStale(); };

  // -- the attribution view --------------------------------------------------------------
  function showAttributionOnly() {
    for (const id of ["head-view", "matrix-view", "grid-view", "neuron-view"]) $(id).hidden = true;
    for (const id of ["layer-label", "head-label", "kind-label", "scale-label", "segment-label"]) $(id).hidden = true;
    $("status").hidden = true;
    $("attribute-view").hidden = false;
    document.body.dataset.view = "attribute";
  }

  function shade(value, limit, signed) {
    if (value === null || !Number.isFinite(value)) return "";
    const t = Math.max(-1, Math.min(1, value / (limit || 1)));
    const [r, g, b] = !signed ? [43, 138, 62] : t < 0 ? [33, 102, 172] : [178, 24, 43];
    return `rgba(${r}, ${g}, ${b}, ${Math.abs(t) * 0.85})`;
  }

  function drawAttribution(doc) {
    const cut = (t) => (t.length > 24 ? `${t.slice(0, 23)}…` : t);
    const head = document.createElement("tr");
    head.append(document.createElement("th"));
    for (const t of doc.tokens) { const th = document.createElement("th"); th.textContent = cut(t); head.append(th); }
    $("attribute-table").tHead.replaceChildren(head);
    const rows = doc.methods.map((method, m) => {
      const tr = document.createElement("tr");
      tr.dataset.method = method;
      const th = document.createElement("th");
      th.className = "method";
      th.textContent = method;
      tr.append(th);
      const values = doc.scores[m];
      const limit = values.reduce((top, v) => (v === null ? top : Math.max(top, Math.abs(v))), 0);
      values.forEach((v, j) => {
        const td = document.createElement("td");
        if (v === null) { td.className = "special"; td.textContent = "–"; } else {
          td.textContent = v.toFixed(3);
          td.style.background = shade(v, limit, doc.signed[m]);
          if (Math.abs(v) / (limit || 1) > 0.6) td.style.color = "#fff";
        }
        td.title = `${doc.tokens[j]} · ${method}: ${v === null ? "special token" : v}`;
        tr.append(td);
      });
      return tr;
    });
    $("attribute-table").tBodies[0].replaceChildren(...rows);
    const out = doc.meta.output || {};
    const what = out.kind === "embedding" ? "the sentence embedding (cosine to the unperturbed one)"
      : out.token !== undefined ? `the ${out.kind} '${out.token}' at position ${out.position} (logit ${Number(out.score).toFixed(3)})`
      : out.class_label !== undefined ? `class ${out.class_index} '${out.class_label}' (logit ${Number(out.score).toFixed(3)})`
      : out.kind;
    $("attribute-output").textContent = `${doc.meta.model}: explaining ${what}`;
    $("attribute-notes").textContent = (doc.meta.notes || []).join(" · ");
    showAttributionOnly();
  }

  readURL();
  // before any attention has arrived page.js draws nothing, so it cannot report view changes
  $("view").addEventListener("change", () => { if (!Object.keys(page.data().kinds || {}).length || page.state.view === "attribute") page.changed(); });
  for (const id of ["text", "pair", "target"]) $(id).addEventListener("input", schedule);
  $("model").addEventListener("change", () => { boxes(); clearTimeout(timer); update(); });
  $("serve").addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(timer); update(); });
  update();
})();
