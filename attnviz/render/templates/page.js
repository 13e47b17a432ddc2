"use strict";
(() => {
  let DATA = JSON.parse(document.getElementById("attnviz-data").textContent);
  // Served by `attnviz serve`: the data arrives (and is replaced) through load(), and the
  // neuron view's vectors are fetched when that view is picked.
  const SERVED = Boolean(DATA.serve);
  const $ = (id) => document.getElementById(id);
  const ROW = 20;               // px per token row in the head view
  const MIN_LINE = 0.01;        // lines below this weight are not drawn
  const HEAD_COLORS = (n) => Array.from({ length: n }, (_, i) => `hsl(${Math.round((360 * i) / n)}, 70%, 45%)`);
  let scaleOf = DATA.bits === 16 ? 65535 : 255;
  const state = { view: "head", kind: null, layer: 0, head: "all", segment: "all", hoverQuery: null, hoverKey: null, hidden: new Set(), query: null, scale: null, pinned: false };
  let rowPx = ROW;              // the head view's row height: sized to the window (sizeRows)
  const decoded = {};           // kind -> { maps: Uint8Array|Uint16Array, rollout }

  const LABEL = 40;             // characters of a token drawn (the data holds at most this too)
  const label = (t, n = LABEL) => (t.length > n ? `${t.slice(0, n - 1)}…` : t);

  function el(tag, props = {}, text) {
    const node = document.createElement(tag);
    Object.assign(node, props);
    if (text !== undefined) node.textContent = text;   // text is data, never markup
    return node;
  }

  async function inflateFloats(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Float32Array(await new Response(stream).arrayBuffer());
  }

  async function inflate(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    const buffer = await new Response(stream).arrayBuffer();
    return DATA.bits === 16 ? new Uint16Array(buffer) : new Uint8Array(buffer);
  }

  // -- data access ----------------------------------------------------------------------
  const info = () => DATA.kinds[state.kind];
  const queryTokens = () => DATA.tokens[info().query];
  const keyTokens = () => DATA.tokens[info().key];

  function map(kind, layer, head) {            // Float32Array [query * key]
    const k = DATA.kinds[kind];
    const [, H, Q, K] = k.shape;
    const size = Q * K;
    const out = new Float32Array(size);
    const maps = decoded[kind].maps;
    if (head === "mean" || head === "all") {
      for (let h = 0; h < H; h++) {
        const base = (layer * H + h) * size;
        for (let i = 0; i < size; i++) out[i] += maps[base + i];
      }
      for (let i = 0; i < size; i++) out[i] /= H * scaleOf;
    } else {
      const base = (layer * H + head) * size;
      for (let i = 0; i < size; i++) out[i] = maps[base + i] / scaleOf;
    }
    return out;
  }

  function rolloutMap(kind, layer) {
    const [, , Q] = DATA.kinds[kind].shape;
    const size = Q * Q;
    const out = new Float32Array(size);
    const source = decoded[kind].rollout;
    for (let i = 0; i < size; i++) out[i] = source[layer * size + i] / scaleOf;
    return out;
  }

  function allowed(i, j) {                      // the sentence-pair filter
    if (state.segment === "all") return true;
    const q = queryTokens().segments[i] === 0 ? "A" : "B";
    const k = keyTokens().segments[j] === 0 ? "A" : "B";
    return state.segment === q + k;
  }

  function color(value, max) {
    const idx = Math.max(0, Math.min(DATA.colors.length - 1, Math.round((value / (max || 1)) * (DATA.colors.length - 1))));
    return DATA.colors[idx];
  }

  // -- controls -------------------------------------------------------------------------
  function fillSelect(select, options, value) {
    select.replaceChildren(...options.map(([v, label]) => el("option", { value: String(v) }, label)));
    select.value = String(value);
  }

  // The data's kinds, layers and heads into the pickers; ``first``: the page's opening state.
  function adoptData(first) {
    const kinds = Object.keys(DATA.kinds);
    if (!kinds.includes(state.kind)) {
      if (state.kind !== null) state.layer = 0;   // another model's kind: its layers differ
      state.kind = kinds[0];
    }
    const opened = DATA.kinds[state.kind];
    if (first) {
      // a page made for the neuron view (one head, with its vectors) opens on it
      if (opened.vectors && opened.shape[0] === 1 && opened.shape[1] === 1) { state.view = "neuron"; state.head = 0; $("view").value = "neuron"; }
      // every head's lines at once is a tangle (and slow for long texts): open on the map with
      // the most structure outside the special-token columns (page_data's `opening`)
      if (!state.pinned && state.view !== "neuron" && opened.opening) {
        state.layer = opened.opening.layer;
        state.head = opened.opening.head;
      } else if (!state.pinned && opened.shape[2] > 150) state.head = "mean";
      if (state.scale === null) state.scale = DATA.scale === "full" ? "full" : "keys";
      $("scale-mode").value = state.scale;
    }
    if (state.hidden.size && [...state.hidden].some((h) => h >= opened.shape[1])) state.hidden = new Set();
    fillSelect($("kind"), kinds.map((k) => [k, k === "cross" ? "cross (decoder → encoder)" : k]), state.kind);
    $("kind-label").hidden = kinds.length < 2;
    const hasPair = DATA.pair !== null && DATA.pair !== undefined;
    $("segment-label").hidden = !hasPair;
    if (!hasPair) state.segment = "all";
    $("segment").value = state.segment;
    refreshLayerHead();
  }

  function setupControls() {
    $("view").addEventListener("change", () => { state.view = $("view").value; api.draw(); });
    $("kind").addEventListener("change", () => { state.kind = $("kind").value; state.layer = 0; api.draw(); });
    $("layer").addEventListener("change", () => { state.layer = Number($("layer").value); draw(); });
    $("head").addEventListener("change", () => { const v = $("head").value; state.head = v === "all" || v === "mean" ? v : Number(v); draw(); });
    $("segment").addEventListener("change", () => { state.segment = $("segment").value; draw(); });
    $("scale-mode").addEventListener("change", () => { state.scale = $("scale-mode").value; draw(); });
  }

  function refreshLayerHead() {
    const k = info();
    fillSelect($("layer"), k.layers.map((id, pos) => [pos, `${id}`]), Math.min(state.layer, k.layers.length - 1));
    state.layer = Number($("layer").value);
    const neuronOption = $("view").querySelector('option[value="neuron"]');
    const noVectors = !k.vectors && !SERVED;
    neuronOption.disabled = noVectors;
    // a disabled option says nothing by itself: its text (and tooltip) say how to get it
    neuronOption.textContent = noVectors ? "Neuron view (make the page with --view neuron)" : "Neuron view (query · key)";
    neuronOption.title = noVectors ? "This page holds no query/key vectors: make it with `attnviz show TEXT --view neuron -l LAYER -H HEAD -o page.html`" : "";
    if (state.view === "neuron" && noVectors) { state.view = "head"; $("view").value = "head"; }
    const rolloutOption = $("view").querySelector('option[value="rollout"]');
    rolloutOption.disabled = !k.rollout;
    if (state.view === "rollout" && !k.rollout) { state.view = "matrix"; $("view").value = "matrix"; }
    const heads = k.heads.map((id, pos) => [pos, id === -1 ? "mean" : `${id}`]);
    // the neuron view draws one head's vectors: it offers no mean (the picker shows what is drawn)
    const first = state.view === "head" ? [["all", "all heads"], ["mean", "mean of heads"]] : state.view === "neuron" ? [] : [["mean", "mean of heads"]];
    let value = state.head;
    if (value === "all" && state.view !== "head") value = "mean";
    if (state.view === "neuron" && (value === "all" || value === "mean")) value = 0;
    if (typeof value === "number" && value >= k.heads.length) value = 0;
    fillSelect($("head"), first.concat(heads), value);
    state.head = value;
    $("head-label").hidden = state.view === "grid" || state.view === "rollout";
    $("scale-label").hidden = state.view === "head" || state.view === "neuron" || state.view === "attribute";
    $("kind-label").hidden = Object.keys(DATA.kinds).length < 2 || state.view === "attribute";
  }

  const room = () => Math.max(320, document.querySelector("main").clientWidth);
  // The height the drawing may fill. Inline in a notebook the frame takes the height the page
  // reports, so sizing to the frame's own height would grow it without end: a fixed height there.
  const windowHeight = () => (DATA.frame ? 640 : window.innerHeight);

  /*ATTNVIZ_VIEWS*/

  // -- dispatch ---------------------------------------------------------------------------
  function draw() {
    // a served page's own views (attribution, lesson; data-served sections): serve.js draws
    // them from its own answers, so they need no attention data here
    const served = [...document.querySelectorAll("main > section[data-served]")];
    for (const section of served) section.hidden = section.dataset.served !== state.view;
    if (served.some((section) => section.dataset.served === state.view)) {
      for (const id of ["head-view", "matrix-view", "grid-view", "neuron-view"]) $(id).hidden = true;
      document.body.dataset.view = state.view;
      if (api.changed) api.changed();
      return;
    }
    const k = info();
    const [, , Q, K] = k.shape;
    $("head-view").hidden = state.view !== "head";
    $("matrix-view").hidden = state.view !== "matrix" && state.view !== "rollout";
    $("grid-view").hidden = state.view !== "grid";
    $("neuron-view").hidden = state.view !== "neuron";
    $("head-label").hidden = state.view === "grid" || state.view === "rollout";
    $("layer-label").hidden = state.view === "grid";  // the grid shows every layer: no picker
    const layerId = k.layers[state.layer];
    if (state.view === "neuron" && !k.vectors) {
      $("neuron-view").hidden = true;   // served: the vectors are on their way (see serve.js)
    } else if (state.view === "head") {
      drawHeadView();
    } else if (state.view === "matrix") {
      const headName = state.head === "mean" ? "mean of heads" : `head ${k.heads[state.head]}`;
      drawMatrix(map(state.kind, state.layer, state.head), Q, K, `${state.kind} · layer ${layerId} · ${headName}`);
    } else if (state.view === "neuron") {
      drawNeuron();
    } else if (state.view === "rollout") {
      drawMatrix(rolloutMap(state.kind, state.layer), Q, K, `${state.kind} · rollout to layer ${layerId}`);
    } else {
      drawGrid();
    }
    document.body.dataset.view = state.view;
    document.body.dataset.layer = String(state.layer);
    document.body.dataset.head = String(state.head);
    reportHeight();
    if (api.changed) api.changed();
  }

  // Inline in Jupyter the page lives in a sandboxed iframe: tell the notebook its height,
  // so the frame fits the content instead of a fixed size.
  function reportHeight() {
    if (window.parent === window || !DATA.frame) return;
    const height = Math.ceil(document.documentElement.scrollHeight);
    window.parent.postMessage({ attnviz: DATA.frame, height }, "*");
  }

  function showMeta() {
    const meta = $("meta");
    meta.replaceChildren();
    const add = (name, value) => { if (value !== null && value !== undefined && value !== "") meta.append(el("dt", {}, name), el("dd", {}, value)); };
    add("model", `${DATA.model} (${DATA.family})`);
    add("text", DATA.text);
    add("pair", DATA.pair);
    add("target", DATA.target);
    if (DATA.transforms.length) add("transforms", DATA.transforms.join(", "));
    document.title = `attnviz · ${DATA.model}`;
    const precision = DATA.bits === 16 ? "16-bit (±0.00001)" : "8-bit (±0.002)";
    $("footer").textContent = SERVED
      ? `Served by attnviz serve. Layers and heads are 0-based. Weights sent at ${precision} precision. The page talks only to this server.`
      : `Made by attnviz. Layers and heads are 0-based. Weights stored at ${precision} precision. Works offline: this file makes no network request.`;
  }

  async function decodeAll() {
    const fresh = {};
    for (const [kind, k] of Object.entries(DATA.kinds)) {
      fresh[kind] = { maps: await inflate(k.data), rollout: k.rollout ? await inflate(k.rollout) : null };
      if (k.vectors) fresh[kind].vectors = { query: await inflateFloats(k.vectors.query), key: await inflateFloats(k.vectors.key) };
    }
    for (const kind of Object.keys(decoded)) delete decoded[kind];
    Object.assign(decoded, fresh);
  }

  let drawnOnce = false;
  // What serve.js uses: replace the data and redraw, keeping the view, layer and head
  // where the new data has them; ``changed`` is called after every draw.
  const api = {
    state,
    data: () => DATA,
    async load(document_) {
      const first = !drawnOnce;
      const previous = DATA;
      DATA = document_;
      scaleOf = DATA.bits === 16 ? 65535 : 255;
      try { await decodeAll(); } catch (error) { DATA = previous; throw error; }
      showMeta();
      adoptData(first);
      $("status").hidden = true;
      draw();
      drawnOnce = true;
      document.body.dataset.ready = "1";
    },
    // a resize can arrive before the data is decoded (Chromium sends each new frame one)
    draw: () => { if (drawnOnce) { refreshLayerHead(); draw(); } },
    changed: null,
  };

  async function main() {
    setupControls();
    $("matrix").addEventListener("mousemove", onMatrixMove);
    $("matrix").addEventListener("mouseleave", () => { $("matrix-hover").hidden = true; });
    let resizing = null;
    window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => api.draw(), 120); });
    if (SERVED) {
      window.attnvizPage = api;
      $("status").textContent = "type some text";
      return;
    }
    await api.load(DATA);
  }

  main().catch((error) => {
    $("status").textContent = `This page could not be drawn: ${error && error.message ? error.message : error}`;
    console.error(error);
  });
})();
