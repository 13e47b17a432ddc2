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
  const state = { view: "head", kind: null, layer: 0, head: "all", segment: "all", hoverQuery: null, hoverKey: null, hidden: new Set(), query: null };
  const decoded = {};           // kind -> { maps: Uint8Array|Uint16Array, rollout }

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
      // every head's lines at once is unreadable (and slow) for long texts: start with the mean
      if (opened.shape[2] > 150) state.head = "mean";
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
  }

  function refreshLayerHead() {
    const k = info();
    fillSelect($("layer"), k.layers.map((id, pos) => [pos, `${id}`]), Math.min(state.layer, k.layers.length - 1));
    state.layer = Number($("layer").value);
    const heads = k.heads.map((id, pos) => [pos, id === -1 ? "mean" : `${id}`]);
    const first = state.view === "head" ? [["all", "all heads"], ["mean", "mean of heads"]] : [["mean", "mean of heads"]];
    let value = state.head;
    if (value === "all" && state.view !== "head") value = "mean";
    if (typeof value === "number" && value >= k.heads.length) value = 0;
    fillSelect($("head"), first.concat(heads), value);
    state.head = value;
    const rolloutOption = $("view").querySelector('option[value="rollout"]');
    rolloutOption.disabled = !k.rollout;
    const neuronOption = $("view").querySelector('option[value="neuron"]');
    neuronOption.disabled = !k.vectors && !SERVED;
    if (state.view === "neuron" && !k.vectors && !SERVED) { state.view = "head"; $("view").value = "head"; }
    if (state.view === "neuron" && (value === "all" || value === "mean")) { state.head = 0; $("head").value = "0"; }
    if (state.view === "rollout" && !k.rollout) { state.view = "matrix"; $("view").value = "matrix"; }
    $("head-label").hidden = state.view === "grid" || state.view === "rollout";
  }

  const room = () => Math.max(320, document.querySelector("main").clientWidth);

  // -- the head legend: bertviz's colour swatches, which also toggle heads -----------------
  function drawLegend() {
    const legend = $("legend");
    const k = info();
    const H = k.shape[1];
    legend.hidden = state.head !== "all" || H < 2;
    if (legend.hidden) return;
    const colors = HEAD_COLORS(H);
    const buttons = k.heads.map((id, h) => {
      const button = el("button", { type: "button", title: `head ${id}: click to show or hide, double-click to show only it` });
      const swatch = el("span", { className: "swatch" });
      swatch.style.background = colors[h];
      button.append(swatch, document.createTextNode(`head ${id}`));
      button.dataset.head = String(h);
      button.setAttribute("aria-pressed", String(!state.hidden.has(h)));
      button.addEventListener("click", () => {
        if (state.hidden.has(h)) state.hidden.delete(h); else state.hidden.add(h);
        drawLegend(); drawLines();
      });
      button.addEventListener("dblclick", () => {
        const only = state.hidden.size === H - 1 && !state.hidden.has(h);
        state.hidden = only ? new Set() : new Set(k.heads.map((_, i) => i).filter((i) => i !== h));
        drawLegend(); drawLines();
      });
      return button;
    });
    legend.replaceChildren(...buttons, el("span", { className: "legend-note" }, "click: show/hide · double-click: only this head"));
  }

  // -- head view: two columns of tokens joined by lines ----------------------------------
  function drawHeadView() {
    const left = $("left"), right = $("right"), canvas = $("lines");
    const queries = queryTokens(), keys = keyTokens();
    const build = (list, tokens, side) => {
      list.replaceChildren(...tokens.display.map((t, i) => {
        const li = el("li", { className: tokens.special[i] ? "token special" : "token" }, t);
        li.dataset.index = String(i);
        li.addEventListener("mouseenter", () => { state[side] = i; drawLines(); });
        li.addEventListener("mouseleave", () => { state[side] = null; drawLines(); });
        return li;
      }));
    };
    build(left, queries, "hoverQuery");
    build(right, keys, "hoverKey");
    drawLegend();
    const rows = Math.max(queries.display.length, keys.display.length);
    const ratio = window.devicePixelRatio || 1;
    // the lines take the width the two token columns leave, within reason
    const width = Math.max(200, Math.min(720, room() - left.offsetWidth - right.offsetWidth - 24));
    canvas.style.width = `${width}px`;
    canvas.style.height = `${rows * ROW}px`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(rows * ROW * ratio);
    drawLines();
  }

  function drawLines() {
    const canvas = $("lines");
    const ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const k = info();
    const [, H, Q, K] = k.shape;
    const heads = state.head === "all" ? [...Array(H).keys()].filter((h) => !state.hidden.has(h)) : [state.head];
    const colors = HEAD_COLORS(H);
    const width = canvas.width / ratio;
    let drawn = 0;
    const weightsToKeys = new Float32Array(K), weightsFromQueries = new Float32Array(Q);
    // Lines are grouped by opacity (10 steps) so each group is one path: a 500-token text
    // draws tens of thousands of lines in a few strokes instead of one stroke per line.
    for (const head of heads) {
      const m = map(state.kind, state.layer, head);
      const buckets = Array.from({ length: 10 }, () => []);
      for (let i = 0; i < Q; i++) {
        if (state.hoverQuery !== null && state.hoverQuery !== i) continue;
        for (let j = 0; j < K; j++) {
          if (state.hoverKey !== null && state.hoverKey !== j) continue;
          if (!allowed(i, j)) continue;
          const w = m[i * K + j];
          if (state.hoverQuery === i) weightsToKeys[j] += w / heads.length;
          if (state.hoverKey === j) weightsFromQueries[i] += w / heads.length;
          if (w < MIN_LINE) continue;
          const alpha = Math.min(1, heads.length > 1 ? w * 0.8 : w);
          buckets[Math.min(9, Math.floor(alpha * 10))].push(i, j);
          drawn++;
        }
      }
      ctx.strokeStyle = head === "mean" ? "#3b5bdb" : colors[head];
      ctx.lineWidth = 2;
      buckets.forEach((pairs, b) => {
        if (!pairs.length) return;
        ctx.globalAlpha = Math.max(0.04, (b + 0.5) / 10);
        ctx.beginPath();
        for (let p = 0; p < pairs.length; p += 2) {
          ctx.moveTo(0, pairs[p] * ROW + ROW / 2);
          ctx.lineTo(width, pairs[p + 1] * ROW + ROW / 2);
        }
        ctx.stroke();
      });
    }
    ctx.globalAlpha = 1;
    canvas.dataset.lines = String(drawn);
    const mark = (list, hovered, weights) => {
      for (const li of list.children) {
        const idx = Number(li.dataset.index);
        li.classList.toggle("active", hovered === idx);
        li.style.background = "";
        li.title = "";
        if (weights && hovered === null) {
          li.style.background = `rgba(59, 91, 219, ${Math.min(0.85, weights[idx])})`;
          li.title = weights[idx].toFixed(4);
        }
      }
    };
    mark($("left"), state.hoverQuery, state.hoverKey !== null ? weightsFromQueries : null);
    mark($("right"), state.hoverKey, state.hoverQuery !== null ? weightsToKeys : null);
  }

  // -- matrix view ------------------------------------------------------------------------
  let matrixState = null;
  function drawMatrix(values, Q, K, title) {
    const canvas = $("matrix");
    const queries = queryTokens(), keys = keyTokens();
    const fit = Math.floor((room() - 150) / K);
    const cell = Math.max(2, Math.min(44, fit, Math.floor(Math.max(640, window.innerHeight - 200) / Q)));
    const showLabels = cell >= 10;
    const labelWidth = showLabels ? 110 : 0;
    const ratio = window.devicePixelRatio || 1;
    const w = labelWidth + K * cell, h = labelWidth + Q * cell;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    let max = 0;
    for (let i = 0; i < Q; i++) for (let j = 0; j < K; j++) if (allowed(i, j)) max = Math.max(max, values[i * K + j]);
    for (let i = 0; i < Q; i++) {
      for (let j = 0; j < K; j++) {
        ctx.fillStyle = allowed(i, j) ? color(values[i * K + j], max) : "#f2f2f2";
        ctx.fillRect(labelWidth + j * cell, labelWidth + i * cell, cell, cell);
      }
    }
    if (showLabels) {
      ctx.fillStyle = "#1d1d1f";
      ctx.font = `${Math.min(13, cell - 1)}px ui-monospace, Menlo, Consolas, monospace`;
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      queries.display.forEach((t, i) => ctx.fillText(t.slice(0, 14), labelWidth - 4, labelWidth + i * cell + cell / 2));
      ctx.save();
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      keys.display.forEach((t, j) => ctx.fillText(t.slice(0, 14), -labelWidth + 4, labelWidth + j * cell + cell / 2));
      ctx.restore();
    }
    canvas.dataset.title = title;
    canvas.dataset.max = max.toFixed(6);
    matrixState = { values, Q, K, cell, labelWidth };
    const scale = $("scale");
    scale.replaceChildren(el("div", {}, max.toFixed(3)));
    const bar = el("div");
    bar.style.cssText = `height:${Math.min(h, 240)}px;width:14px;background:linear-gradient(to top, ${DATA.colors[0]}, ${DATA.colors[Math.floor(DATA.colors.length / 2)]}, ${DATA.colors[DATA.colors.length - 1]})`;
    scale.append(bar, el("div", {}, "0"));
  }

  function onMatrixMove(event) {
    if (!matrixState) return;
    const rect = $("matrix").getBoundingClientRect();
    const { values, Q, K, cell, labelWidth } = matrixState;
    const j = Math.floor((event.clientX - rect.left - labelWidth) / cell);
    const i = Math.floor((event.clientY - rect.top - labelWidth) / cell);
    const readout = $("readout");
    if (i < 0 || j < 0 || i >= Q || j >= K) { readout.textContent = "\u00a0"; return; }
    readout.textContent = `${queryTokens().display[i]} (${i}) → ${keyTokens().display[j]} (${j}): ${values[i * K + j].toFixed(4)}`;
  }

  // -- neuron view: how one head's weights for one query come about -----------------------
  function diverging(value, limit) {
    const t = Math.max(-1, Math.min(1, value / (limit || 1)));
    const [a, b] = t < 0 ? [[247, 247, 247], [33, 102, 172]] : [[247, 247, 247], [178, 24, 43]];
    const s = Math.abs(t);
    return `rgb(${a.map((c, i) => Math.round(c + (b[i] - c) * s)).join(",")})`;
  }

  function drawNeuron() {
    const k = info();
    const [, H, Q, K] = k.shape;
    const vec = decoded[state.kind].vectors;
    const d = k.vectors.dim;
    const head = typeof state.head === "number" ? state.head : 0;
    if (state.query === null || state.query >= Q) {
      const special = queryTokens().special;
      state.query = Math.max(0, special.findIndex((s) => !s));
    }
    const i = state.query;
    const queries = $("neuron-queries");
    queries.replaceChildren(...queryTokens().display.map((t, index) => {
      const li = el("li", { className: index === i ? "token selected" : "token" }, t);
      li.dataset.index = String(index);
      li.tabIndex = 0;
      const pick = () => { state.query = index; drawNeuron(); };
      li.addEventListener("click", pick);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
      return li;
    }));
    const base = (state.layer * H + head);
    const q = vec.query.subarray((base * Q + i) * d, (base * Q + i + 1) * d);
    const keys = vec.key.subarray(base * K * d, (base + 1) * K * d);
    const scaling = k.vectors.scaling[state.layer] ?? 1 / Math.sqrt(d);
    const weights = map(state.kind, state.layer, head).subarray(i * K, (i + 1) * K);
    const cell = Math.max(3, Math.min(12, Math.floor((room() - 520) / (2 * d + 2))));
    const canvas = $("neuron-canvas");
    const ratio = window.devicePixelRatio || 1;
    const w = (2 * d + 2) * cell, h = (K + 2) * ROW;
    canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
    const limit = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const qLimit = limit(q), kLimit = limit(keys);
    const products = new Float32Array(K * d);
    for (let j = 0; j < K; j++) for (let x = 0; x < d; x++) products[j * d + x] = q[x] * keys[j * d + x];
    const pLimit = limit(products);
    for (let x = 0; x < d; x++) { ctx.fillStyle = diverging(q[x], qLimit); ctx.fillRect(x * cell, 2, cell, ROW - 4); }
    ctx.fillStyle = "#666"; ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    ctx.fillText(`query vector of '${queryTokens().display[i]}'`, (d + 2) * cell, ROW / 2);
    ctx.fillText("key vectors", 0, ROW * 1.5);
    ctx.fillText("query × key", (d + 2) * cell, ROW * 1.5);
    const rows = [];
    const top = Math.max(...weights) || 1;
    for (let j = 0; j < K; j++) {
      let dot = 0;
      for (let x = 0; x < d; x++) {
        const y = (j + 2) * ROW + 2;
        ctx.fillStyle = diverging(keys[j * d + x], kLimit); ctx.fillRect(x * cell, y, cell, ROW - 4);
        ctx.fillStyle = diverging(products[j * d + x], pLimit); ctx.fillRect((d + 2 + x) * cell, y, cell, ROW - 4);
        dot += products[j * d + x];
      }
      const masked = weights[j] === 0;
      const tr = el("tr");
      tr.append(
        el("td", {}, keyTokens().display[j]),
        el("td", {}, masked ? "masked" : dot.toFixed(2)),
        el("td", {}, masked ? "" : (dot * scaling).toFixed(2)),
        el("td", {}, weights[j].toFixed(3)),
      );
      const bar = el("td", { className: "bar" });
      const span = el("span");
      span.style.width = `${Math.round(60 * weights[j] / top)}px`;
      bar.append(span);
      tr.append(bar);
      tr.dataset.dot = dot.toFixed(6);
      rows.push(tr);
    }
    $("neuron-numbers").tBodies[0].replaceChildren(...rows);
    $("neuron-title").textContent = `${state.kind} · layer ${k.layers[state.layer]} · head ${k.heads[head]} · query ${i} '${queryTokens().display[i]}' · score = q·k × ${scaling.toPrecision(4)}`;
    document.body.dataset.query = String(i);
  }

  // -- grid view --------------------------------------------------------------------------
  function drawGrid() {
    const grid = $("grid");
    const k = info();
    const [L, H, Q, K] = k.shape;
    const size = Math.max(36, Math.min(110, Math.floor((room() - 70) / H) - 6));
    grid.style.gridTemplateColumns = `auto repeat(${H}, ${size + 2}px)`;
    const cells = [el("span")];
    const short = size < 64;
    k.heads.forEach((id) => cells.push(el("span", { className: "collabel" }, id === -1 ? "mean" : short ? `H${id}` : `head ${id}`)));
    for (let layer = 0; layer < L; layer++) {
      cells.push(el("span", { className: "rowlabel" }, short ? `L${k.layers[layer]}` : `layer ${k.layers[layer]}`));
      for (let head = 0; head < H; head++) {
        const button = el("button", { type: "button", title: `layer ${k.layers[layer]}, head ${k.heads[head]}` });
        button.setAttribute("aria-label", `open layer ${k.layers[layer]} head ${k.heads[head]}`);
        const canvas = el("canvas", { width: size, height: size });
        const ctx = canvas.getContext("2d");
        const values = map(state.kind, layer, head);
        let max = 0;
        for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]);
        const image = ctx.createImageData(size, size);
        for (let y = 0; y < size; y++) {
          const i = Math.floor((y * Q) / size);
          for (let x = 0; x < size; x++) {
            const j = Math.floor((x * K) / size);
            const hex = color(values[i * K + j], max);
            const p = (y * size + x) * 4;
            image.data[p] = parseInt(hex.slice(1, 3), 16);
            image.data[p + 1] = parseInt(hex.slice(3, 5), 16);
            image.data[p + 2] = parseInt(hex.slice(5, 7), 16);
            image.data[p + 3] = 255;
          }
        }
        ctx.putImageData(image, 0, 0);
        button.append(canvas);
        button.addEventListener("click", () => {
          state.layer = layer; state.head = head; state.view = "matrix";
          $("view").value = "matrix";
          refreshLayerHead();
          $("layer").value = String(layer);
          $("head").value = String(head);
          draw();
        });
        cells.push(button);
      }
    }
    grid.replaceChildren(...cells);
  }

  // -- dispatch ---------------------------------------------------------------------------
  function draw() {
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
    draw: () => { if (Object.keys(DATA.kinds || {}).length) { refreshLayerHead(); draw(); } },
    changed: null,
  };

  async function main() {
    setupControls();
    $("matrix").addEventListener("mousemove", onMatrixMove);
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
