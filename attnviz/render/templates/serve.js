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
  const shownKey = { attention: null, attribution: null, lesson: null };   // what each kind of answer on screen was for
  let pendingKey = null;
  let generation = 0;     // bumps with every request: a lesson's picture requests stop when it moves
  // step 4 of the lesson shows the head of the Layer and Head pickers once the user (or a link)
  // chose one, and the query token clicked in the lesson or the neuron view; else its own choice
  let stepChosen = false;
  let queryChosen = false;
  let lesson = null;      // the lesson on screen: { doc, body, pictures: {step: url|null}, loading }

  // the attribution view (`attnviz attribute`'s live methods): served pages only
  const attributeOption = document.createElement("option");
  attributeOption.value = "attribute";
  attributeOption.textContent = "Attribution (which tokens matter)";
  $("view").append(attributeOption);
  document.querySelector("main").append($("attribute-template").content.cloneNode(true));
  // the lesson view (`attnviz lesson`'s nine steps for the typed text): served pages only
  const lessonOption = document.createElement("option");
  lessonOption.value = "lesson";
  lessonOption.textContent = "Lesson (the transformer, step by step)";
  $("view").append(lessonOption);
  document.querySelector("main").append($("lesson-template").content.cloneNode(true));
  const TASKS = { attribute: "attribution", lesson: "lesson" };
  const taskOf = () => TASKS[page.state.view] || "attention";
  const ROUTES = { attention: "api/attention", attribution: "api/attribution", lesson: "api/lesson" };

  function make(tag, props = {}, text) {
    const node = document.createElement(tag);
    Object.assign(node, props);
    if (text !== undefined) node.textContent = text;   // text is data, never markup
    return node;
  }

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
    // the lesson reads one text; attention and attribution take an encoder's pair
    if (m.pair && task !== "lesson" && $("pair").value.trim()) body.pair = $("pair").value;
    if (m.target && $("target").value.trim()) body.target = $("target").value;
    if (task === "lesson") {
      const s = page.state;
      if (stepChosen && typeof s.head === "number") { body.layer = s.layer; body.head = s.head; }
      if (queryChosen && Number.isInteger(s.query)) body.query = s.query;
    }
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
    if (queryChosen && Number.isInteger(s.query)) params.set("query", String(s.query));
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
    stepChosen = params.has("layer") && typeof s.head === "number";
    const query = params.get("query");
    if (query !== null && /^\d+$/.test(query)) { s.query = Number(query); queryChosen = true; }
  }

  // -- asking the server ------------------------------------------------------------------
  // what an answer is for, vectors aside: the model and the texts
  const keyOf = (body, task) => JSON.stringify([task, body.model, body.text, body.pair || null, body.target || null,
    body.layer ?? null, body.head ?? null, body.query ?? null]);

  async function update() {
    timer = null;
    generation++;
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
      response = await fetch(ROUTES[task], {
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
    } else if (task === "lesson") {
      drawLesson(document_, body);
    } else {
      hasVectors = body.vectors;
      await page.load(document_);
    }
    const ms = performance.now() - started;
    document.body.dataset.seq = String(shown);
    document.body.dataset.drawMs = ms.toFixed(1);
    const t = document_.timing || {};
    document.body.dataset.forwardMs = String(t.forward_ms ?? "");
    if (task === "lesson") {
      lesson.status = document_.lesson_ms === null ? "lesson kept from before"
        : `lesson computed in ${Number(document_.lesson_ms).toFixed(0)} ms`;
      lesson.status += `, ${Number(t.waited_ms || 0).toFixed(0)} ms in the queue; drawn ${ms.toFixed(0)} ms after the pause`;
      setStatus(lesson.status);
      writeURL();
      fetchPictures();
      return;
    }
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
    const current = shownKey[task] === key && (task !== "attention" || !body.vectors || hasVectors);
    if (!current && pendingKey !== wanted) update();
    else if (task === "attribution" && current) showAttributionOnly();
    else if (task === "lesson" && current) { fillStepPickers(lesson.doc); showLessonOnly(); fetchPictures(); }
  }

  page.changed = () => { writeURL(); if (TASKS[page.state.view]) showControlsOf(page.state.view); refreshIfStale(); };

  // the nav's pickers that a served view uses: the lesson's Layer and Head choose step 4
  function showControlsOf(view) {
    for (const id of ["kind-label", "scale-label", "segment-label"]) $(id).hidden = true;
    $("layer-label").hidden = view !== "lesson";
    $("head-label").hidden = view !== "lesson";
    $("status").hidden = true;
  }

  // -- the attribution view --------------------------------------------------------------
  function showOnly(view) {
    for (const id of ["head-view", "matrix-view", "grid-view", "neuron-view"]) $(id).hidden = true;
    for (const section of document.querySelectorAll("main > section[data-served]")) section.hidden = section.dataset.served !== view;
    showControlsOf(view);
    document.body.dataset.view = view;
  }
  const showAttributionOnly = () => showOnly("attribute");

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
    const segments = doc.segments || [];
    doc.tokens.forEach((t, j) => {
      // a pair's second sentence is underlined: both sentences' tokens are scored
      const th = make("th", { className: segments[j] === 1 ? "second" : "" }, cut(t));
      if (segments[j] === 1) th.title = "second sentence of the pair";
      head.append(th);
    });
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
    const pair = segments.includes(1) ? " · tokens of the second sentence are underlined" : "";
    $("attribute-output").textContent = `${doc.meta.model}: explaining ${what}${pair}`;
    $("attribute-notes").textContent = (doc.meta.notes || []).join(" · ");
    showAttributionOnly();
  }

  // -- the lesson view ----------------------------------------------------------------------
  const showLessonOnly = () => showOnly("lesson");

  // Layer and Head list the lesson's own layers and heads, set to step 4's.
  function fillStepPickers(doc) {
    const labels = (doc.steps[4] && doc.steps[4].data.labels) || [];
    const four = doc.steps[3];
    const s = page.state;
    if (!labels.length) return;
    if (four.applies) {
      s.layer = four.data.layer; s.head = four.data.head; s.query = four.data.query;
      s.pinned = true;   // the other views open on this head too
    }
    const fill = (select, count, value) => {
      select.replaceChildren(...Array.from({ length: count }, (_, i) => make("option", { value: String(i) }, String(i))));
      select.value = String(value);
    };
    fill($("layer"), labels.length, Math.min(Number(s.layer) || 0, labels.length - 1));
    fill($("head"), labels[0].length, typeof s.head === "number" ? Math.min(s.head, labels[0].length - 1) : 0);
  }

  function tokenTable(rows) {
    const table = make("table", { className: "lesson-tokens" });
    const headRow = make("tr");
    for (const name of ["#", "characters", "span", "piece", "id"]) headRow.append(make("th", {}, name));
    table.append(make("thead"));
    table.tHead.append(headRow);
    const body = make("tbody");
    for (const row of rows) {
      const tr = make("tr", { className: row.special ? "special" : "" });
      tr.append(
        make("td", {}, String(row.index)),
        make("td", {}, row.chars ? row.text : "added by the model"),
        make("td", {}, row.chars ? `${row.chars[0]}-${row.chars[1]}` : ""),
        make("td", {}, row.piece),
        make("td", {}, String(row.id)),
      );
      body.append(tr);
    }
    table.append(body);
    return table;
  }

  // step 4's query: the tokens as buttons, the lesson's query pressed
  function queryPicker(data) {
    const box = make("div", { className: "lesson-queries" });
    box.append(make("span", {}, "query:"));
    data.keys.forEach((token, j) => {
      const button = make("button", { type: "button", title: `query ${j}` }, token.length > 24 ? `${token.slice(0, 23)}…` : token);
      button.setAttribute("aria-pressed", String(j === data.query));
      button.dataset.query = String(j);
      button.addEventListener("click", () => {
        page.state.query = j;
        queryChosen = true;
        page.changed();
      });
      box.append(button);
    });
    return box;
  }

  let lessonsDrawn = 0;
  function drawLesson(doc, body) {
    lesson = { doc, body, pictures: {}, loading: false, status: "" };
    document.body.dataset.lessons = String(++lessonsDrawn);   // for tests: picture requests take seq numbers too
    const items = doc.steps.map((step) => {
      const li = make("li", { className: step.applies ? "" : "skipped", id: `lesson-step-${step.step}` });
      li.dataset.step = String(step.step);
      li.dataset.applies = step.applies ? "1" : "0";
      li.append(make("h3", {}, `${step.step}. ${step.title}`), make("p", { className: "sentences" }, step.text));
      if (step.step === 1) li.append(tokenTable(step.data.tokens || []));
      if (step.step === 4 && step.applies) li.append(queryPicker(step.data));
      // a step that does not apply has no picture: its one line says why
      if (step.step >= 2 && step.applies) li.append(make("div", { className: "drawing" }, "drawing the picture…"));
      return li;
    });
    $("lesson-steps").replaceChildren(...items);
    const meta = [`${doc.model} (${doc.model_type}, ${doc.family})`];
    if (doc.target !== null && doc.target !== undefined) meta.push(`decoder text: ${doc.target}`);
    if (body.pair === undefined && !$("pair-label").hidden && $("pair").value.trim()) meta.push("The lesson reads the text alone: the pair box is left out.");
    meta.push(...(doc.notes || []));
    $("lesson-meta").textContent = meta.join(" · ");
    fillStepPickers(doc);
    document.body.dataset.pictures = "0";
    document.body.dataset.picturesDone = "0";
    showLessonOnly();
  }

  // The pictures, one request each (a newer text or another client waits for one picture,
  // not eight): they stop when the page sends anything newer.
  async function fetchPictures() {
    if (!lesson || lesson.loading) return;
    const mine = generation;
    const wanted = lesson.doc.steps.filter((s) => s.step >= 2 && s.applies && !(s.step in lesson.pictures));
    if (!wanted.length) { document.body.dataset.picturesDone = "1"; return; }
    lesson.loading = true;
    const current = lesson;
    try {
      for (const step of wanted) {
        const body = { ...current.body, picture: step.step, seq: ++sent };
        let response, answer;
        try {
          response = await fetch(ROUTES.lesson, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
          answer = await response.json();
        } catch (error) { return; }
        if (mine !== generation || current !== lesson) return;   // replaced (409 too)
        if (!response.ok) { setStatus(`error: ${answer.error}`, true); return; }
        current.pictures[step.step] = answer.picture;
        const slot = document.querySelector(`#lesson-step-${step.step} .drawing`);
        if (slot && answer.picture) {
          const img = make("img", { alt: `step ${step.step}: ${step.title}`, src: answer.picture });
          slot.replaceWith(img);
        } else if (slot) slot.remove();
        const done = Object.keys(current.pictures).length;
        document.body.dataset.pictures = String(done);
        setStatus(`${current.status} · pictures ${done}/${done + lesson.doc.steps.filter((s) => s.step >= 2 && s.applies && !(s.step in current.pictures)).length}`);
      }
      document.body.dataset.picturesDone = "1";
    } finally {
      current.loading = false;
    }
  }

  readURL();
  // the user's own Layer/Head choice (capture phase: before page.js redraws and asks again)
  $("controls").addEventListener("change", (event) => { if (event.target.id === "layer" || event.target.id === "head") stepChosen = true; }, true);
  // a query clicked in the neuron view is the lesson's too (bubbling: after page.js set it)
  $("neuron-queries").addEventListener("click", () => { queryChosen = true; writeURL(); });
  // before any attention has arrived page.js draws nothing, so it cannot report view changes
  $("view").addEventListener("change", () => { if (!Object.keys(page.data().kinds || {}).length || TASKS[page.state.view]) page.changed(); });
  for (const id of ["text", "target"]) $(id).addEventListener("input", () => { queryChosen = false; schedule(); });
  $("pair").addEventListener("input", schedule);
  $("model").addEventListener("change", () => { stepChosen = false; queryChosen = false; boxes(); clearTimeout(timer); update(); });
  $("serve").addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(timer); update(); });
  update();
})();
