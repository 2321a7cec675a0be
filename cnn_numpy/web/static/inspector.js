// The step inspector and the error analysis.  One training step is traced on the server
// (POST /api/inspect/step: cnn_numpy.trace on a copy of a net) and walked stage by stage;
// any cell of any array opens its explanation (GET /api/inspect/explain): the terms with
// their values, their sum against what the layer computed, the line of code.  The error
// analysis is the confusion matrix of the net shown (GET /api/confusion), a cell's images
// (GET /api/confusion/cell), and any of them opened in the inspector.  Uses app.js's $,
// call, unpack, signed, escape and percent.
"use strict";

let traced = null;           // the traced step (POST /api/inspect/step's answer)
let stageAt = 0, sampleAt = 0;
const fetched = new Map();   // this trace's arrays: "layer/name/sample" -> the answer
const MAX_TILES = 64;        // maps drawn per array (the first channels)

async function inspectStep(body, scroll) {
  $("i-message").textContent = "tracing one step...";
  try {
    traced = await call("/api/inspect/step", body);
  } catch (error) {
    $("i-message").textContent = "Error: " + error.message;
    return;
  }
  fetched.clear();
  stageAt = 0;
  sampleAt = 0;
  if (body.source === "next") $("i-source").value = "next";  // the form says what it traced
  $("i-message").textContent = body.source === "test"
    ? "traced the test image opened from Error analysis (the form traces its own batch)" : "";
  $("i-where").textContent = `trace ${traced.trace}: ${traced.where}`;
  renderBatch();
  renderStagePills();
  $("i-explain").innerHTML = `<p class="note">Click any cell of a map to see how it was
    computed.</p>`;
  if (scroll) $("inspector-card").scrollIntoView();
  await showStage();
}

$("i-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const source = $("i-source").value, body = {source};
  if (source === "train") {
    body.seed = Number($("i-seed").value) || 0;
    body.batch_size = Number($("i-batch").value) || 8;
  }
  const rate = Number($("t-learning_rate").value);
  if (source !== "next" && rate > 0) body.learning_rate = rate;
  inspectStep(body, false);
});

const traceName = (k) => (traced.class_names ? traced.class_names[k] : String(k));

// The batch: each image with its label, the class the network gave it and its loss; a
// click chooses the sample whose arrays are drawn.
function renderBatch() {
  const images = traced.images ? unpack(traced.images) : null;
  $("i-batch-strip").innerHTML = `<p class="note">${escape(traced.batch)}: ${traced.n} image` +
    `${traced.n > 1 ? "s" : ""}; ${traced.optimizer} step t = ${traced.steps}, learning rate ` +
    `${traced.learning_rate.toPrecision(3)}; the step's loss (cce) ${traced.cce.toFixed(4)}.</p>` +
    traced.labels.map((label, i) => `<figure data-sample="${i}" class="${traced.predictions[i] ===
      label ? "right" : "wrong"}${i === sampleAt ? " chosen" : ""}" title="sample ${i}: label
      ${escape(traceName(label))}, predicted ${escape(traceName(traced.predictions[i]))}">
      <canvas data-image="${i}"></canvas><figcaption>${escape(traceName(label))}${
        traced.predictions[i] === label ? "" : ` &rarr; ${escape(traceName(traced.predictions[i]))}`}<br>
      <span>loss ${traced.loss[i].toFixed(2)}</span></figcaption></figure>`).join("");
  if (!images) return;
  const [, h, w] = traced.images.shape;
  $("i-batch-strip").querySelectorAll("canvas[data-image]").forEach((canvas) => {
    const i = +canvas.dataset.image, scale = images.scale || 1;
    grayAt(canvas, h, w, (r, c) => images.at((i * h + r) * w + c) / scale);
  });
}

function grayAt(canvas, h, w, value) {
  canvas.width = w; canvas.height = h;
  const context = canvas.getContext("2d"), picture = context.createImageData(w, h);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
    const v = Math.max(0, Math.min(255, Math.round(255 * value(r, c)))), i = 4 * (r * w + c);
    picture.data[i] = picture.data[i + 1] = picture.data[i + 2] = v;
    picture.data[i + 3] = 255;
  }
  context.putImageData(picture, 0, 0);
}

$("i-batch-strip").addEventListener("click", (event) => {
  const figure = event.target.closest("figure[data-sample]");
  if (!figure || !traced) return;
  sampleAt = +figure.dataset.sample;
  $("i-batch-strip").querySelectorAll("figure").forEach((f) =>
    f.classList.toggle("chosen", +f.dataset.sample === sampleAt));
  showStage();
});

const KINDS = {forward: "forward", loss: "", backward: "backward", update: "update"};

function renderStagePills() {
  $("i-body").hidden = false;
  let kind = null;
  $("i-stages").innerHTML = traced.stages.map((stage, k) => {
    const heading = stage.kind !== kind && KINDS[stage.kind]
      ? `<span class="note">${KINDS[stage.kind]}</span>` : "";
    kind = stage.kind;
    const text = stage.kind === "loss" ? "loss" : String(stage.layer);
    return `${heading}<button data-stage="${k}" title="${escape(stage.title)}">${text}</button>`;
  }).join("");
}

$("i-stages").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-stage]");
  if (button) { stageAt = +button.dataset.stage; showStage(); }
});
$("i-prev").addEventListener("click", () => { if (stageAt > 0) { stageAt--; showStage(); } });
$("i-next").addEventListener("click", () => {
  if (traced && stageAt < traced.stages.length - 1) { stageAt++; showStage(); }
});

// One stage: its words and its arrays, each drawn (a large one on a click).
async function showStage() {
  const stage = traced.stages[stageAt];
  $("i-stage-name").textContent = `stage ${stageAt + 1} of ${traced.stages.length}: ${stage.title}`;
  $("i-stage-text").textContent = stage.text;
  $("i-prev").disabled = stageAt === 0;
  $("i-next").disabled = stageAt === traced.stages.length - 1;
  $("i-stages").querySelectorAll("button").forEach((b) =>
    b.classList.toggle("chosen", +b.dataset.stage === stageAt));
  const box = $("i-arrays");
  box.innerHTML = stage.arrays.map((a, k) => `<div class="array" data-k="${k}">
    <h4>${escape(a.label)} <span class="note">(${a.shape.join(" x ") || "one number"})
      ${escape(a.what)}${a.batch ? `; sample ${sampleAt}` : ""}</span></h4>
    <div class="tiles"></div><div class="readout note"></div></div>`).join("");
  await Promise.all(stage.arrays.map((a, k) => {
    const div = box.querySelector(`[data-k="${k}"]`);
    if (a.shown) return drawArray(div, a);
    const count = a.shape.reduce((x, y) => x * y, 1);
    div.querySelector(".tiles").innerHTML = `<button class="show">draw its
      ${count.toLocaleString()} values</button>`;
    div.querySelector("button.show").addEventListener("click", () => drawArray(div, a));
    return null;
  }));
}

async function fetchArray(a) {
  const key = `${a.layer}/${a.name}/${a.batch ? sampleAt : ""}`;
  if (!fetched.has(key)) {
    const query = `trace=${traced.trace}&layer=${a.layer}&name=${encodeURIComponent(a.name)}` +
      (a.batch ? `&sample=${sampleAt}` : "");
    fetched.set(key, await call("/api/inspect/array?" + query));
  }
  return fetched.get(key);
}

// How an array of this shape is drawn: tiles of rows x cols cells, and the index of a cell.
function tileLayout(shape) {
  const [a, b, c, d] = shape;
  if (shape.length === 0) return {tiles: 1, rows: 1, cols: 1, index: () => []};
  if (shape.length === 1) {
    const cols = a <= 64 ? a : Math.ceil(Math.sqrt(a));
    return {tiles: 1, rows: Math.ceil(a / cols), cols,
            index: (t, r, q) => (r * cols + q < a ? [r * cols + q] : null)};
  }
  if (shape.length === 2) return {tiles: 1, rows: a, cols: b, index: (t, r, q) => [r, q]};
  if (shape.length === 3) return {tiles: Math.min(c, MAX_TILES), rows: a, cols: b,
                                  index: (t, r, q) => [r, q, t]};
  return {tiles: Math.min(d, MAX_TILES), rows: a, cols: b * c,   // input channels side by side
          index: (t, r, q) => [r, q % b, Math.floor(q / b), t]};
}

const flatIndex = (index, shape) => index.reduce((at, i, k) => at * shape[k] + i, 0);

function cellSize(layout) {
  const longest = Math.max(layout.rows, layout.cols);
  if (layout.tiles > 1) return Math.max(2, Math.min(16, Math.floor(84 / longest)));
  return Math.max(1, Math.min(24, Math.floor(640 / layout.cols), Math.floor(168 / layout.rows)));
}

async function drawArray(div, a) {
  let data;
  try {
    data = await fetchArray(a);
  } catch (error) {
    div.querySelector(".readout").textContent = "Error: " + error.message;
    return;
  }
  const values = unpack(data.values), layout = tileLayout(data.shape), cell = cellSize(layout);
  const tiles = div.querySelector(".tiles");
  tiles.innerHTML = Array.from({length: layout.tiles}, (_, t) =>
    `<span class="tile"><canvas data-tile="${t}"></canvas><i class="cell-mark" hidden></i></span>`)
    .join("") + (layout.tiles < (data.shape[data.shape.length - 1] || 1) && data.shape.length >= 3
    ? `<span class="note">the first ${layout.tiles} of ${data.shape[data.shape.length - 1]}</span>` : "");
  tiles.querySelectorAll("canvas").forEach((canvas) => {
    const t = +canvas.dataset.tile;
    signed(canvas, layout.rows, layout.cols, (r, q) => {
      const index = layout.index(t, r, q);
      return index ? values.at(flatIndex(index, data.shape)) : 0;
    }, values.scale);
    Object.assign(canvas.style, {width: `${layout.cols * cell}px`, height: `${layout.rows * cell}px`});
    const at = (event) => {
      const box = canvas.getBoundingClientRect();
      const r = Math.min(layout.rows - 1, Math.floor((event.clientY - box.top) / box.height * layout.rows));
      const q = Math.min(layout.cols - 1, Math.floor((event.clientX - box.left) / box.width * layout.cols));
      const index = layout.index(t, Math.max(r, 0), Math.max(q, 0));
      return index && {r, q, index, full: a.batch ? [sampleAt, ...index] : index};
    };
    canvas.addEventListener("pointermove", (event) => {
      const found = at(event);
      div.querySelector(".readout").textContent = found ? `${a.label}[${found.full.join(", ")}]` +
        ` ≈ ${values.at(flatIndex(found.index, data.shape)).toPrecision(4)}: click to explain` : "";
    });
    canvas.addEventListener("click", (event) => {
      const found = at(event);
      if (!found) return;
      markCell(canvas, layout, found);
      explainNumber(a.layer, a.name, found.full);
    });
  });
}

function markCell(canvas, layout, {r, q}) {
  document.querySelectorAll("#i-arrays .cell-mark").forEach((mark) => { mark.hidden = true; });
  const mark = canvas.nextElementSibling;
  mark.hidden = false;
  Object.assign(mark.style, {left: `${100 * q / layout.cols}%`, top: `${100 * r / layout.rows}%`,
    width: `${100 / layout.cols}%`, height: `${100 / layout.rows}%`});
}

async function explainNumber(layer, name, index) {
  const query = `trace=${traced.trace}&layer=${layer}&name=${encodeURIComponent(name)}` +
    `&index=${index.join(",")}`;
  const started = performance.now();
  try {
    renderExplanation(await call("/api/inspect/explain?" + query));
    window.explainMilliseconds = performance.now() - started;   // request + drawing, for tests
  } catch (error) {
    $("i-explain").innerHTML = `<p class="note">Error: ${escape(error.message)}</p>`;
  }
}

// A number as the panel shows it: 6 significant digits, in exponent form when tiny or huge.
function numberText(v) {
  if (v === null || v === undefined) return "-";
  const size = Math.abs(v);
  return size !== 0 && (size < 1e-3 || size >= 1e6) ? Number(v).toExponential(5)
    : String(Number(Number(v).toPrecision(6)));
}

// A term with each of its numbers a link to that number's own explanation.
function termLabel(term) {
  let html = escape(term.label);
  for (const n of term.inputs) {
    if (n.layer === null || n.index === null) continue;
    const text = escape(`${n.name}[${n.index.join(", ")}]`);
    html = html.replace(text, `<a href="#" data-layer="${n.layer}" data-name="${escape(n.name)}"
      data-index="${n.index.join(",")}">${text}</a>`);
  }
  return html;
}

function renderExplanation(e) {
  const rows = e.terms.map((t) => `<tr><td>${termLabel(t)}</td><td><code>${escape(t.with_values)}` +
    `</code></td><td>${numberText(t.value)}</td></tr>`).join("");
  const rest = e.rest.count ? `<tr class="rest"><td colspan="2">${e.rest.count.toLocaleString()}
    more terms, summed</td><td>${numberText(e.rest.sum)}</td></tr>` : "";
  const calls = e.sources.length > 1 ? `<details><summary>the calls, outermost first</summary>
    ${e.sources.map((s) => `<div><code>${escape(s.file)}:${s.line}</code> ${escape(s.code)}</div>`)
      .join("")}</details>` : "";
  const details = Object.entries(e.details || {}).map(([k, v]) =>
    `<div><b>${escape(k)}</b>: ${escape(JSON.stringify(v)).slice(0, 400)}</div>`).join("");
  $("i-explain").innerHTML = `<h3>${escape(e.label)} <span class="note">layer ${e.layer}
    (${escape(e.layer_type)})${e.asked_as ? `, asked as ${escape(e.asked_as)}` : ""}</span></h3>
    <p class="note">rule: <code>${escape(e.formula)}</code></p>
    <p class="equation"><code>${escape(e.equation)}</code></p>
    <p class="total">${e.count.toLocaleString()} term${e.count === 1 ? " sums" : "s sum"} to
      <b data-total="${e.total}">${numberText(e.total)}</b>; the layer computed
      <b data-value="${e.value}">${numberText(e.value)}</b> (difference
      ${Math.abs(e.total - e.value).toExponential(1)})</p>
    <table class="terms"><tr><th>term${e.rest.count ? " (the largest first)" : ""}</th>
      <th>with values</th><th>value</th>
      </tr>${rows}${rest}</table>
    <p class="note">code: <code>${escape(e.source.file)}:${e.source.line}</code>
      (${escape(e.source.function)})<br><code>${escape(e.source.code)}</code></p>${calls}
    ${details ? `<div class="details note">${details}</div>` : ""}`;
}

$("i-explain").addEventListener("click", (event) => {
  const link = event.target.closest("a[data-layer]");
  if (!link) return;
  event.preventDefault();
  explainNumber(+link.dataset.layer, link.dataset.name, link.dataset.index.split(",").map(Number));
});

// ---------------------------------------------------------------- error analysis
let matrix = null, errorsBusy = false, errorsTried = null;

async function computeErrors() {
  errorsBusy = true;
  errorsTried = trainState ? trainState.weights_version : null;
  $("e-message").textContent = "computing...";
  try {
    matrix = await call("/api/confusion");
    renderMatrix();
    $("e-message").textContent = "";
  } catch (error) {
    $("e-message").textContent = "Error: " + error.message;
  }
  errorsBusy = false;
}

$("e-compute").addEventListener("click", computeErrors);

const matrixName = (k) => (matrix.class_names ? matrix.class_names[k] : String(k));

let cellOf = null;   // the matrix the cell list below it was loaded from

function renderMatrix() {
  const k = matrix.counts.length;
  const key = `${matrix.weights_version} ${matrix.matrix}`;   // the net's weights, its images
  if (cellOf !== key) $("e-cell").innerHTML = "";   // a list of another net's images goes
  cellOf = key;
  const most = Math.max(1, ...matrix.counts.flatMap((row, t) => row.filter((_, p) => p !== t)));
  $("e-summary").textContent = `${matrix.errors.toLocaleString()} of ${matrix.images.toLocaleString()}` +
    ` ${datasetName(matrix.dataset)} test images wrong (error rate ${percent(matrix.error_rate)})`;
  const head = Array.from({length: k}, (_, p) => `<th>${escape(matrixName(p))}</th>`).join("");
  const rows = matrix.counts.map((row, t) => `<tr><th>${escape(matrixName(t))}</th>${row.map(
    (count, p) => `<td data-true="${t}" data-pred="${p}" class="${t === p ? "diagonal" : ""}` +
      `${count ? "" : " zero"}" style="--heat: ${t === p ? 0 : count / most}" title="${count}
      image${count === 1 ? "" : "s"} of ${escape(matrixName(t))} predicted
      ${escape(matrixName(p))}">${count}</td>`).join("")}</tr>`).join("");
  $("e-matrix").innerHTML = `<table class="confusion"><tr><th class="corner">true \\ pred.</th>
    ${head}</tr>${rows}</table>`;
}

$("e-matrix").addEventListener("click", (event) => {
  const cell = event.target.closest("td[data-true]");
  if (cell && cell.textContent !== "0") loadCell(+cell.dataset.true, +cell.dataset.pred);
});

async function loadCell(t, p) {
  $("e-cell").innerHTML = `<p class="note">loading...</p>`;
  try {
    renderCell(await call(`/api/confusion/cell?true=${t}&pred=${p}&matrix=${matrix.matrix}`));
  } catch (error) {
    $("e-cell").innerHTML = `<p class="note">Error: ${escape(error.message)}</p>`;
  }
}

function renderCell(answer) {
  const what = `${answer.count} image${answer.count === 1 ? "" : "s"} of
    ${escape(matrixName(answer.true))} predicted ${escape(matrixName(answer.pred))}`;
  const more = answer.count > answer.images.length ? `; the ${answer.images.length} of highest loss` : "";
  $("e-cell").innerHTML = `<h3>${what}${more}, the highest loss first</h3><div class="cell-images">` +
    answer.images.map((s, k) => `<figure data-cell="${k}"><canvas data-kind="image"></canvas>
      <canvas data-kind="saliency"></canvas><figcaption>test image ${s.index}, loss
      ${s.loss.toFixed(2)}<br>${s.top.map(([c, p]) => `${escape(matrixName(c))} ${p.toFixed(2)}`)
      .join(", ")}<br><button data-open="${s.index}">Open in the inspector</button></figcaption>
      </figure>`).join("") + "</div>";
  answer.images.forEach((s, k) => {
    const figure = $("e-cell").querySelector(`[data-cell="${k}"]`);
    const image = unpack(s.image), salient = unpack(s.saliency), [h, w] = s.image.shape;
    grayAt(figure.querySelector('[data-kind="image"]'), h, w,
      (r, c) => image.at(r * w + c) / (image.scale || 1));
    signed(figure.querySelector('[data-kind="saliency"]'), h, w, (r, c) => salient.at(r * w + c),
      salient.scale);
  });
}

$("e-cell").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-open]");
  if (button) inspectStep({source: "test", indices: [+button.dataset.open]}, true);
});

// Called with every state the page polls: the next-batch choice only for a paused run; the
// matrix computed again once a run's weights stop changing.
function inspectorRunState(run) {
  const paused = !!run && run.status === "paused";
  const option = $("i-source").querySelector('option[value="next"]');
  option.disabled = !paused;
  if (!paused && $("i-source").value === "next") $("i-source").value = "train";
  const settled = !run || run.status !== "running";
  if (matrix && settled && !errorsBusy && trainState.weights_version !== errorsTried) {
    computeErrors();
  }
}
