// The views of the page: the head view (with its legend), the matrix, the neuron view and
// the grid. Inserted into page.js's scope by attnviz.render.html (one script, one closure).

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
        // only this head: the Head picker shows it (choosing "all heads" there brings the rest back)
        state.hidden = new Set();
        state.head = h;
        $("head").value = String(h);
        draw();
      });
      return button;
    });
    legend.replaceChildren(...buttons, el("span", { className: "legend-note" }, "click: show/hide · double-click: only this head (Head picker: all heads again)"));
  }

  // Rows tall enough that the drawing fills the window's height (within 16-60 px a row; a
  // long text keeps 16 px rows and scrolls).
  function sizeRows(rows) {
    const top = $("left").getBoundingClientRect().top + window.scrollY;
    const room = windowHeight() - top - 48;   // the footer's line stays in view
    rowPx = Math.max(16, Math.min(60, Math.floor(room / Math.max(1, rows))));
    $("head-view").style.setProperty("--row", `${rowPx}px`);
  }

  // -- head view: two columns of tokens joined by lines ----------------------------------
  function drawHeadView() {
    const left = $("left"), right = $("right"), canvas = $("lines");
    const queries = queryTokens(), keys = keyTokens();
    const build = (list, tokens, side) => {
      list.replaceChildren(...tokens.display.map((t, i) => {
        const li = el("li", { className: tokens.special[i] ? "token special" : "token" }, label(t));
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
    sizeRows(rows);
    const ratio = window.devicePixelRatio || 1;
    // the lines take the width the two token columns leave, within reason
    const width = Math.max(200, Math.min(720, room() - left.offsetWidth - right.offsetWidth - 24));
    canvas.style.width = `${width}px`;
    canvas.style.height = `${rows * rowPx}px`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(rows * rowPx * ratio);
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
          ctx.moveTo(0, pairs[p] * rowPx + rowPx / 2);
          ctx.lineTo(width, pairs[p + 1] * rowPx + rowPx / 2);
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
  // The colour scale, the rule of attnviz.render.colors.color_scale: by default the top colour
  // is the largest allowed cell outside the excluded key columns (special tokens; a decoder's
  // first token, its attention sink), so one bright [CLS] column does not turn the rest black.
  // Excluded columns that go above it are drawn saturated and marked, and the legend gives
  // their true maximum. "full": the largest cell anywhere (the page's old scale).
  function colorScale(values, Q, K, mode = state.scale) {
    const excluded = info().scale_excluded || [];
    let peak = 0, kept = 0;
    const columnMax = new Float32Array(K);
    for (let i = 0; i < Q; i++) {
      for (let j = 0; j < K; j++) {
        if (!allowed(i, j)) continue;
        const v = values[i * K + j];
        if (v > columnMax[j]) columnMax[j] = v;
        if (!excluded[j] && v > kept) kept = v;
      }
    }
    for (let j = 0; j < K; j++) peak = Math.max(peak, columnMax[j]);
    const some = excluded.some(Boolean), every = excluded.length > 0 && excluded.every(Boolean);
    if (mode === "full" || !some || every || kept <= 0) return { vmax: peak || 1, peak, marked: [], markedMax: 0 };
    const marked = [];
    let markedMax = 0;
    for (let j = 0; j < K; j++) {
      if (excluded[j] && columnMax[j] > kept * 1.01) { marked.push(j); markedMax = Math.max(markedMax, columnMax[j]); }
    }
    return { vmax: kept, peak, marked, markedMax };
  }

  const MARK = 9;               // px above the cells for the marks of columns off the scale
  let matrixState = null;
  function drawMatrix(values, Q, K, title) {
    const canvas = $("matrix");
    const queries = queryTokens(), keys = keyTokens();
    const fit = Math.floor((room() - 150) / K);
    const top0 = canvas.getBoundingClientRect().top + window.scrollY;
    const tall = Math.max(240, windowHeight() - top0 - 190);   // the matrix fits the window's height
    const cell = Math.max(2, Math.min(44, fit, Math.floor(tall / Q)));
    const showLabels = cell >= 10;
    const labelWidth = showLabels ? 110 : 0;
    const left = labelWidth, top = labelWidth + MARK;
    const ratio = window.devicePixelRatio || 1;
    const w = left + K * cell, h = top + Q * cell;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const scale = colorScale(values, Q, K);
    for (let i = 0; i < Q; i++) {
      for (let j = 0; j < K; j++) {
        ctx.fillStyle = allowed(i, j) ? color(values[i * K + j], scale.vmax) : "#f2f2f2";
        ctx.fillRect(left + j * cell, top + i * cell, cell, cell);
      }
    }
    ctx.fillStyle = "#c92a2a";     // a small triangle over each column drawn off the scale
    for (const j of scale.marked) {
      const x = left + j * cell + cell / 2, half = Math.max(2, Math.min(5, cell / 2));
      ctx.beginPath();
      ctx.moveTo(x - half, top - MARK + 1);
      ctx.lineTo(x + half, top - MARK + 1);
      ctx.lineTo(x, top - 2);
      ctx.fill();
    }
    if (showLabels) {
      ctx.fillStyle = "#1d1d1f";
      ctx.font = `${Math.min(13, cell - 1)}px ui-monospace, Menlo, Consolas, monospace`;
      ctx.textBaseline = "middle";
      ctx.textAlign = "right";
      queries.display.forEach((t, i) => ctx.fillText(label(t, 14), left - 4, top + i * cell + cell / 2));
      ctx.save();
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      keys.display.forEach((t, j) => ctx.fillText(label(t, 14), -labelWidth + 4, left + j * cell + cell / 2));
      ctx.restore();
    }
    canvas.dataset.title = title;
    canvas.dataset.max = scale.vmax.toFixed(6);
    canvas.dataset.peak = scale.peak.toFixed(6);
    canvas.dataset.marked = scale.marked.join(",");
    Object.assign(canvas.dataset, { left: String(left), top: String(top), cell: String(cell) });
    matrixState = { values, Q, K, cell, left, top };
    $("matrix-hover").hidden = true;
    const legend = $("scale");
    legend.replaceChildren(el("div", {}, scale.vmax.toFixed(3)));
    const bar = el("div");
    bar.style.cssText = `height:${Math.min(h, 240)}px;width:14px;background:linear-gradient(to top, ${DATA.colors[0]}, ${DATA.colors[Math.floor(DATA.colors.length / 2)]}, ${DATA.colors[DATA.colors.length - 1]})`;
    legend.append(bar, el("div", {}, "0"));
    const names = scale.marked.slice(0, 4).map((j) => label(keys.display[j], 14)).join(", ") + (scale.marked.length > 4 ? ", …" : "");
    $("scale-note").textContent = scale.marked.length
      ? `▼ ${names}: ${scale.marked.length === 1 ? "this column goes" : "these columns go"} up to ${scale.markedMax.toFixed(3)}, above the scale's top of ${scale.vmax.toFixed(3)} (drawn saturated). Scale "full" shows them in range.`
      : "";
  }

  function onMatrixMove(event) {
    if (!matrixState) return;
    const rect = $("matrix").getBoundingClientRect();
    const { values, Q, K, cell, left, top } = matrixState;
    const j = Math.floor((event.clientX - rect.left - left) / cell);
    const i = Math.floor((event.clientY - rect.top - top) / cell);
    const readout = $("readout");
    const hover = $("matrix-hover");
    if (i < 0 || j < 0 || i >= Q || j >= K) { readout.textContent = "\u00a0"; hover.hidden = true; return; }
    readout.textContent = `${label(queryTokens().display[i])} (${i}) → ${label(keyTokens().display[j])} (${j}): ${values[i * K + j].toFixed(4)}`;
    Object.assign(hover.style, { left: `${left + j * cell - 1}px`, top: `${top + i * cell - 1}px`, width: `${cell + 2}px`, height: `${cell + 2}px` });
    hover.hidden = false;
    hover.dataset.cell = `${i},${j}`;
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
    const SHORT = 16;             // characters of a token in the neuron view's label columns
    const tokenItem = (special) => (t, index) => {
      const li = el("li", { className: special[index] ? "token special" : "token" }, label(t, SHORT));
      if (t.length > SHORT) li.title = t;
      li.dataset.index = String(index);
      return li;
    };
    const queries = $("neuron-queries");
    queries.replaceChildren(...queryTokens().display.map((t, index) => {
      const li = tokenItem(queryTokens().special)(t, index);
      if (index === i) li.classList.add("selected");
      li.tabIndex = 0;
      const pick = () => { state.query = index; drawNeuron(); };
      li.addEventListener("click", pick);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
      return li;
    }));
    $("neuron-keys").replaceChildren(...keyTokens().display.map(tokenItem(keyTokens().special)));
    const base = (state.layer * H + head);
    const q = vec.query.subarray((base * Q + i) * d, (base * Q + i + 1) * d);
    const keys = vec.key.subarray(base * K * d, (base + 1) * K * d);
    const scaling = k.vectors.scaling[state.layer] ?? 1 / Math.sqrt(d);
    const slide = (k.vectors.window || [])[state.layer] ?? null;
    const p = i + (K - Q);
    const weights = map(state.kind, state.layer, head).subarray(i * K, (i + 1) * K);
    // room for two label columns and the numbers table beside the two vector columns
    const cell = Math.max(3, Math.min(12, Math.floor((room() - 660) / (2 * d))));
    const ratio = window.devicePixelRatio || 1;
    const canvasOf = (id, rows) => {
      const canvas = $(id);
      const w = d * cell, h = rows * ROW;
      canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
      canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
      return ctx;
    };
    const qctx = canvasOf("neuron-query", 1), kctx = canvasOf("neuron-canvas", K), pctx = canvasOf("neuron-products", K);
    const limit = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const qLimit = limit(q), kLimit = limit(keys);
    const products = new Float32Array(K * d);
    for (let j = 0; j < K; j++) for (let x = 0; x < d; x++) products[j * d + x] = q[x] * keys[j * d + x];
    const pLimit = limit(products);
    for (let x = 0; x < d; x++) { qctx.fillStyle = diverging(q[x], qLimit); qctx.fillRect(x * cell, 2, cell, ROW - 4); }
    $("neuron-query-caption").textContent = `query vector of '${queryTokens().display[i]}' (${d} values)`;
    const rows = [];
    const top = Math.max(...weights) || 1;
    for (let j = 0; j < K; j++) {
      let dot = 0;
      for (let x = 0; x < d; x++) {
        const y = j * ROW + 2;
        kctx.fillStyle = diverging(keys[j * d + x], kLimit); kctx.fillRect(x * cell, y, cell, ROW - 4);
        pctx.fillStyle = diverging(products[j * d + x], pLimit); pctx.fillRect(x * cell, y, cell, ROW - 4);
        dot += products[j * d + x];
      }
      // masked only where the model's mask hides the key: a decoder's keys after the query,
      // and keys a sliding window leaves out (|p - j| >= window, p the query's key position;
      // neuron.py's hidden_keys). A weight of 0 after 16-bit quantisation is often just tiny,
      // and its q·k still tells the story.
      const masked = (Boolean(k.causal) && j > p) || (slide !== null && Math.abs(p - j) >= slide);
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
    $("neuron-title").textContent = `${state.kind} · layer ${k.layers[state.layer]} · head ${k.heads[head]} · query ${i} '${queryTokens().display[i]}' · score = q·k × ${scaling.toPrecision(4)}${slide !== null ? ` · sliding window ${slide}` : ""}`;
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
        const max = colorScale(values, Q, K).vmax;
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
