// cnn-numpy live: draw a digit, see every layer, train a network and watch it learn.  Plain
// JavaScript and canvas, no libraries: every number shown comes from the server, which runs
// cnn-numpy's NumPy layers (see /api/* in docs/live-page.md).  One sign convention everywhere:
// blue negative, dark zero, orange positive (signed()).
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
let model = null;      // GET /api/model
let last = null;       // the last POST /api/predict answer
let busy = false, pending = false, drawing = false, previous = null;
let padShowsTestImage = false;   // the pad holds a test image: the first stroke clears it

async function call(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// ---------------------------------------------------------------- drawing
function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  if (padShowsTestImage) clearPad();   // a drawing starts on a clean pad
  padShowsTestImage = false;
  drawing = true;
  previous = point(event);
  pad.setPointerCapture(event.pointerId);
  $("truth").textContent = "";
  stroke(previous);
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  stroke(point(event));
  predictPad();
});
for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, async () => {
    if (!drawing) return;
    drawing = false;
    await predictPad();
    if (last) setProbe(last.image, null);   // the live views follow your digit
  });
}

function setProbe(image, label, dataset = null) {   // label: a class of dataset's
  call("/api/train/probe", {image, label, dataset}).catch(() => {});
}

function stroke(to) {
  ink.strokeStyle = "#fff";
  ink.lineWidth = 20;
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(previous[0], previous[1]);
  ink.lineTo(to[0], to[1]);
  ink.stroke();
  previous = to;
}

async function predictPad() {
  await predict({png: pad.toDataURL("image/png")});
}

// One request at a time; strokes made meanwhile are sent as one request afterwards.
async function predict(body) {
  if (busy) { pending = body; return; }
  busy = true;
  const started = performance.now();
  try {
    render(await call("/api/predict", body));
    window.redrawMilliseconds = performance.now() - started;   // request + redraw, for tests
  } catch (error) {
    $("timing").textContent = "Error: " + error.message;
  }
  busy = false;
  if (pending) { const next = pending; pending = false; predict(next); }
}

$("clear").addEventListener("click", () => {
  clearPad();
  padShowsTestImage = false;
  $("truth").textContent = "";
  predict({image: Array.from({length: 28}, () => new Array(28).fill(0))});
});

$("random").addEventListener("click", async () => {
  let answer;
  try {
    answer = await call("/api/random-image");
  } catch (error) {   // e.g. your classes changed since the net shown learned them
    $("truth").textContent = "Random test image: " + error.message + ".";
    return;
  }
  clearPad();
  const cell = pad.width / 28;
  answer.image.forEach((row, r) => row.forEach((v, c) => {
    const g = Math.round(255 * v);
    ink.fillStyle = `rgb(${g},${g},${g})`;
    ink.fillRect(c * cell, r * cell, cell, cell);
  }));
  padShowsTestImage = true;
  const from = answer.dataset ? ` of ${datasetName(answer.dataset)}` : "";
  $("truth").textContent = `Test image ${answer.index}${from}: its true label is ` +
    `${className(answer.label)}. Drawing on the pad clears it.`;
  predict({image: answer.image});
  if (model.input_shape[0] === 28) setProbe(answer.image, answer.label, answer.dataset);
});

// ---------------------------------------------------------------- pictures
function gray(canvas, rows, scale) {
  const h = rows.length, w = rows[0].length;
  canvas.width = w; canvas.height = h;
  const context = canvas.getContext("2d"), picture = context.createImageData(w, h);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
    const v = Math.max(0, Math.min(255, Math.round(255 * rows[r][c] / scale)));
    const i = 4 * (r * w + c);
    picture.data[i] = picture.data[i + 1] = picture.data[i + 2] = v;
    picture.data[i + 3] = 255;
  }
  context.putImageData(picture, 0, 0);
}

const POSITIVE = [240, 136, 62], NEGATIVE = [63, 176, 255], ZERO = 24;

// A signed map: value(r, c) / scale in [-1, 1] drawn blue < 0 < orange on a dark zero.
function signed(canvas, h, w, value, scale) {
  canvas.width = w; canvas.height = h;
  const context = canvas.getContext("2d"), picture = context.createImageData(w, h);
  scale = scale || 1e-12;
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
    const t = Math.max(-1, Math.min(1, value(r, c) / scale)), i = 4 * (r * w + c);
    const rgb = t >= 0 ? POSITIVE : NEGATIVE;
    for (let k = 0; k < 3; k++) picture.data[i + k] = Math.round(ZERO + (rgb[k] - ZERO) * Math.abs(t));
    picture.data[i + 3] = 255;
  }
  context.putImageData(picture, 0, 0);
}

function diverging(canvas, rows, scale) {
  signed(canvas, rows.length, rows[0].length, (r, c) => rows[r][c], scale);
}

const channel = (values, f) => values.map((row) => row.map((cell) => cell[f]));
const maxAbs = (values) => Math.max(1e-12, ...values.flat(Infinity).map(Math.abs));

// Text for HTML: a class name is the user's own words.
const escape = (text) => String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function renderBars(probabilities, prediction) {
  const bars = $("bars"), names = classNames(probabilities.length).join("\u0000");
  if (bars.dataset.names !== names) {   // a model with other classes: new bars
    bars.dataset.names = names;
    bars.classList.toggle("named", !!(model && model.class_names) &&
      model.class_names.some((n, k) => n !== String(k)));
    bars.innerHTML = "";
    for (let k = 0; k < probabilities.length; k++) {
      bars.insertAdjacentHTML("beforeend", `<div class="bar" data-class="${k}"><b>${escape(className(k))}</b>
        <div class="track"><div class="fill"></div></div><span class="value"></span></div>`);
    }
  }
  [...bars.children].forEach((bar, k) => {
    bar.classList.toggle("top", k === prediction);
    bar.querySelector(".fill").style.width = (100 * probabilities[k]).toFixed(1) + "%";
    bar.querySelector(".value").textContent = probabilities[k].toFixed(3);
  });
}

function renderLayers(answer) {
  const box = $("layers"), first = model.first_conv;
  if (box.dataset.built !== "yes") {
    box.innerHTML = "";
    answer.layers.forEach((layer, i) => {
      const maps = layer.shape.length === 3;
      const small = maps && layer.shape[2] > 32 ? " small" : "";
      const isFirst = first && i === first.layer ? " first" : "";
      const body = maps
        ? `<div class="maps${isFirst}">${Array.from({length: layer.shape[2]},
            (_, f) => `<canvas class="${small}" data-layer="${i}" data-filter="${f}"
              title="channel ${f}"></canvas>`).join("")}</div>`
        : `<canvas class="strip" data-layer="${i}" height="60"></canvas>`;
      box.insertAdjacentHTML("beforeend", `<div class="layer"><h3>${layer.name}
        <span class="note">output (${layer.shape.join(", ")})</span></h3>${body}</div>`);
    });
    box.querySelectorAll(".maps.first canvas").forEach((canvas) => {
      for (const name of ["pointermove", "pointerdown"]) {
        canvas.addEventListener(name, (event) => explainPixel(event, canvas));
      }
      canvas.addEventListener("pointerleave", () => { $("seen-mark").hidden = true; });
    });
    box.dataset.built = "yes";
  }
  const lastLayer = answer.layers.length - 1;
  answer.layers.forEach((layer, i) => {
    if (layer.shape.length === 3) {
      box.querySelectorAll(`canvas[data-layer="${i}"]`).forEach((canvas) => {
        const map = channel(layer.values, +canvas.dataset.filter);   // each map its own scale
        diverging(canvas, map, maxAbs(map));
      });
    } else {
      strip(box.querySelector(`canvas[data-layer="${i}"]`), layer.values,
            i === lastLayer ? classNames(layer.values.length) : null);
    }
  });
}

// What each output means: the model's class names ("Sneaker", "cat"), else its number.
const nameIn = (names, c) => (names ? names[c] : String(c));
const DIGITS = Array.from({length: 10}, (_, k) => String(k));   // a net's classes unnamed
const className = (c) => nameIn(model && model.class_names, c);  // of the net shown
const datasetName = (d) => (d === "own" ? "your classes" : d);   // as the Train panel says it
const classNames = (k) => Array.from({length: k}, (_, c) => className(c));

// A vector as bars from a zero line: orange up for positive, blue down for negative; with
// labels (the output layer's classes) each bar is one labelled unit.
function strip(canvas, values, labels) {
  const labelled = labels && values.length <= 40;
  canvas.width = labelled ? Math.max(400, canvas.clientWidth || 400) : Math.min(values.length, 800);
  canvas.height = labelled ? 90 : 60;
  const context = canvas.getContext("2d"), scale = maxAbs(values);
  const bottom = labelled ? canvas.height - 16 : canvas.height;
  const allPositive = Math.min(...values) >= 0, zero = allPositive ? bottom : bottom / 2;
  context.fillStyle = "#0b0f13";
  context.fillRect(0, 0, canvas.width, canvas.height);
  const per = values.length / canvas.width, width = labelled ? canvas.width / values.length : 1;
  const count = labelled ? values.length : canvas.width;
  for (let x = 0; x < count; x++) {
    const v = values[labelled ? x : Math.floor(x * per)] / scale;
    context.fillStyle = v >= 0 ? "#f0883e" : "#3fb0ff";
    const h = Math.abs(v) * zero;
    const left = labelled ? x * width + 2 : x, w = labelled ? width - 4 : 1;
    context.fillRect(left, v >= 0 ? zero - h : zero, w, h);
    if (labelled) {
      context.fillStyle = "#8b98a5";
      context.font = "12px system-ui";
      context.textAlign = "center";
      context.fillText(labels[x], x * width + width / 2, canvas.height - 3);
    }
  }
  context.fillStyle = "#8b98a5";   // the zero line
  context.fillRect(0, Math.min(zero, bottom - 1), canvas.width, 1);
}

function renderFilters() {
  const first = model.first_conv;
  if (!first) return;
  const W = first.weights, nf = W[0][0][0].length, scale = maxAbs(W);
  let html = `<h3>First convolution's filters (${first.filter_width} x ${first.filter_width},
    channel 0; one scale for all)</h3><div class="maps">`;
  for (let f = 0; f < nf; f++) html += `<canvas data-weights="${f}" title="filter ${f}"></canvas>`;
  $("filters").innerHTML = html + "</div>";
  $("filters").querySelectorAll("canvas").forEach((canvas) => {
    const f = +canvas.dataset.weights;
    diverging(canvas, W.map((row) => row.map((cell) => cell[0][f])), scale);
  });
}

// The multiply-adds behind one output of the first conv layer: the server's trace of the
// network shown explains Z there (cnn_numpy.trace), so the panel always agrees with the maps.
let pixelBusy = false, pixelNext = null, pixelShown = null;

function explainPixel(event, canvas) {
  if (!last) return;
  const first = model.first_conv, f = +canvas.dataset.filter;
  const [h, w] = last.layers[first.layer].shape;
  const box = canvas.getBoundingClientRect();
  const r = Math.max(0, Math.min(h - 1, Math.floor((event.clientY - box.top) / box.height * h)));
  const c = Math.max(0, Math.min(w - 1, Math.floor((event.clientX - box.left) / box.width * w)));
  const fw = first.filter_width, top = r * first.stride - first.pad_top;
  const left = c * first.stride - first.pad_left;
  const mark = $("seen-mark");
  mark.hidden = false;
  Object.assign(mark.style, {left: `${100 * left / 28}%`, top: `${100 * top / 28}%`,
    width: `${100 * fw / 28}%`, height: `${100 * fw / 28}%`});
  askPixel({layer: first.layer, r, c, f});
}

// One request at a time; the pixel the pointer reached meanwhile is asked for next.
async function askPixel(asked) {
  if (pixelBusy) { pixelNext = asked; return; }
  pixelBusy = true;
  try {
    const found = await call("/api/inspect/pixel", {image: last.image, layer: asked.layer,
      index: [asked.r, asked.c, asked.f]});
    pixelShown = asked;
    renderMac(found, asked);
  } catch (error) {
    $("mac").textContent = "Error: " + error.message;
  }
  pixelBusy = false;
  if (pixelNext) { const next = pixelNext; pixelNext = null; askPixel(next); }
}

// The explanation as the window, the filter and their products, the sum first.
function renderMac(found, {r, c, f}) {
  const fw = found.details.filter_width;
  const grid = () => Array.from({length: fw}, () => new Array(fw).fill(0));
  const window_ = grid(), filter = grid(), products = grid();
  let bias = 0;
  for (const term of found.terms) {
    const weight = term.inputs.find((n) => n.name === "W");
    if (!weight) { bias += term.value; continue; }
    const [a, b] = weight.index;
    window_[a][b] += term.inputs[0].value;
    filter[a][b] += weight.value;
    products[a][b] += term.value;
  }
  const sum = found.total - bias, z = found.total, relu = last && found.layer_type === "ConvLayer_ReLU";
  const table = (caption, rows) => `<table><caption>${caption}</caption>${rows.map(
    (row) => `<tr>${row.map((v) => `<td>${v.toFixed(3)}</td>`).join("")}</tr>`).join("")}</table>`;
  const code = found.source;
  $("mac").innerHTML = `<div class="mac-total"><div><b>${escape(last.layers[found.layer].name)}</b>,
    filter ${f}, output row ${r}, column ${c}</div>
    <div>sum of products ${sum.toFixed(4)} + bias ${bias.toFixed(4)} = ${z.toFixed(4)}` +
    (relu ? `; ReLU: max(${z.toFixed(4)}, 0) = ${Math.max(z, 0).toFixed(4)}` : "") +
    `<br>the layer computed <b id="mac-value">${found.A.toFixed(4)}</b> (the map's value)</div></div>
    ${table("input window", window_)} ${table("x filter", filter)} ${table("= products", products)}
    <div class="note">code: ${escape(code.file)}:${code.line} (${escape(code.function)}):
      <code>${escape(code.code)}</code></div>`;
}

function render(answer) {
  last = answer;
  renderBars(answer.probabilities, answer.prediction);
  $("predicted").textContent = className(answer.prediction);
  $("timing").textContent = `forward pass: ${answer.milliseconds.toFixed(1)} ms (server)`;
  gray($("seen"), answer.image, 1);
  renderLayers(answer);
  if (explained) explainDrawing();
}

// ---------------------------------------------------------------- stride groups
let plan = null, steps = [], step = 0;

async function loadGroups(event) {
  if (event) event.preventDefault();
  const q = ["filter", "stride", "input", "pad"].map((k) => `${k}=${$("g-" + k).value}`)
    .join("&");
  try {
    plan = await call("/api/stride-groups?" + q);
  } catch (error) {   // no stale grid under an error
    plan = null; steps = [];
    $("g-grid").innerHTML = "";
    $("g-text").textContent = "";
    $("g-status").textContent = "Error: " + error.message;
    return;
  }
  steps = plan.groups.flatMap((g) => g.cells.map((cell, i) => ({group: g, cell, i})));
  step = 0;
  const grid = $("g-grid");
  grid.style.gridTemplateColumns = `repeat(${plan.input}, 1fr)`;
  const numbers = plan.input <= 12;
  grid.innerHTML = Array.from({length: plan.input * plan.input}, (_, k) =>
    `<div data-cell="${k + 1}">${numbers ? k + 1 : ""}</div>`).join("");
  for (const k of plan.untouched) grid.children[k - 1].classList.add("untouched");
  for (const k of plan.padding_cells) grid.children[k - 1].classList.add("padding");
  drawStep();
}

const hue = (g) => `hsl(${Math.round(360 * (g - 1) / Math.max(plan.groups.length, 1))}, 80%, 62%)`;
const faint = (g) => `hsl(${Math.round(360 * (g - 1) / Math.max(plan.groups.length, 1))}, 45%, 28%)`;

function drawStep() {
  const grid = $("g-grid"), {group, cell, i} = steps[step], n = plan.input, fw = plan.filter;
  [...grid.children].forEach((div) => { div.style.background = ""; div.classList.remove("in"); });
  group.cells.slice(0, i + 1).forEach(([r, c], j) => {   // this group's windows so far
    for (let a = 0; a < fw; a++) for (let b = 0; b < fw; b++) {
      const div = grid.children[(r * plan.stride + a) * n + c * plan.stride + b];
      div.style.background = j === i ? hue(group.number) : faint(group.number);
      if (j === i) div.classList.add("in");
    }
  });
  const [r, c] = cell;
  $("g-status").textContent = `position ${step + 1} of ${steps.length}`;
  $("g-text").textContent = `Group ${group.number} of ${plan.groups.length}, window ${i + 1} ` +
    `of ${group.cells.length}: output row ${r}, column ${c}. Windows of one group are ` +
    `${plan.every} positions apart and never overlap, so one slice and reshape lines up all ` +
    `of them for a single matrix product.` + (plan.pad ? ` Dotted cells: ${plan.pad} ` +
    `cell${plan.pad > 1 ? "s" : ""} of zero padding on each side of the ${plan.input - 2 * plan.pad}` +
    ` x ${plan.input - 2 * plan.pad} input.` : "") + untouchedNote();
}

// "Hatched cells: ...": how many of the cells no window touches are the input's, and how
// many only padding (which the stride skips at the far edge).
function untouchedNote() {
  if (!plan.untouched.length) return "";
  const padding = new Set(plan.padding_cells);
  const pads = plan.untouched.filter((k) => padding.has(k)).length;
  const cells = (count, what) => `${count} ${what} cell${count === 1 ? "" : "s"}`;
  const parts = [plan.untouched.length - pads ? cells(plan.untouched.length - pads, "input") : "",
                 pads ? cells(pads, "padding") : ""].filter(Boolean);
  return ` Hatched cells: no window touches them (${parts.join(" and ")}).`;
}

$("groups-form").addEventListener("submit", loadGroups);
$("g-prev").addEventListener("click", () => { if (!steps.length) return;
  step = (step + steps.length - 1) % steps.length; drawStep(); });
$("g-next").addEventListener("click", () => { if (!steps.length) return;
  step = (step + 1) % steps.length; drawStep(); });

// ---------------------------------------------------------------- engines
$("engines").addEventListener("click", async () => {
  if (!last) return;
  $("engine-note").textContent = "timing...";
  const answer = await call("/api/engines", {image: last.image});
  $("engine-table").innerHTML = "<tr><th>engine</th><th>one image</th><th>largest difference " +
    "from naive</th></tr>" + answer.engines.map((e) => `<tr><td>${e.engine}</td>` +
    `<td>${e.milliseconds.toFixed(2)} ms</td><td>${e.largest_difference.toExponential(1)}` +
    `</td></tr>`).join("");
  $("engine-note").textContent = answer.note;
});

// ---------------------------------------------------------------- start
async function loadModel() {
  model = await call("/api/model");
  const conv = model.first_conv !== null;   // panels that only mean something with a conv
  document.querySelectorAll(".conv-only").forEach((e) => { e.hidden = !conv; });
  $("layers").dataset.built = "";
  $("filters").innerHTML = "";
  if (pixelShown) {   // another net: the last explained pixel may not exist in it
    pixelShown = null;
    $("mac").innerHTML = `<span class="note">The multiply-adds of the pixel under the pointer
      appear here.</span>`;
  }
  if (conv) {
    const first = model.first_conv;
    $("g-filter").value = first.filter_width;
    $("g-stride").value = first.stride;
    $("g-pad").value = first.pad_top;
    $("g-input").value = Math.min(8, model.input_shape[0]);   // small enough to step through
    renderFilters();
    loadGroups();
  }
  drawNote();
}

// The weights shown changed (a run's snapshot, its end): the filters, the prediction, the
// maps and the multiply-add panel are computed again with them.
async function refreshWeights() {
  model = await call("/api/model");
  renderFilters();
  if (last) predict({image: last.image});
  if (pixelShown && model.first_conv) askPixel(pixelShown);
}

// A network that learned something other than digits still reads the pad as a digit: say so.
function drawNote() {
  const digits = !model.dataset || ["mnist", "mnist-sample"].includes(model.dataset);
  const all = model.class_names || [];
  const names = all.length ? ` (${all.slice(0, 4).join(", ")}${all.length > 4 ? ", ..." : ""})` : "";
  $("draw-note").textContent = digits ? "" : `The network shown learned ${datasetName(model.dataset)}` +
    `${names}: a drawing is read as the pad reads digits (white ` +
    "on black, centred); Random test image shows one of its own test images.";
}

(async () => {
  await loadModel();
  $("t-layers").value = model.layers_text || "";
  fillDefaults(model.defaults);
  clearPad();
  $("random").click();
  startTraining();
})();

// ---------------------------------------------------------------- saliency and nudge
let explained = false;

$("explain").addEventListener("click", () => { explained = true; explainDrawing(); });

// The drawn digit's d score / d pixel and the smallest FGSM step that changes the answer.
async function explainDrawing() {
  if (!last) return;
  const body = {image: last.image};
  let answer;
  try {
    answer = await call("/api/saliency", body);
    setProbe(last.image, null);
  } catch (error) {
    $("explain-note").textContent = "Error: " + error.message;
    return;
  }
  $("saliency-box").hidden = false;
  diverging($("saliency"), answer.saliency, maxAbs(answer.saliency));
  const nudge = answer.nudge;
  $("nudge-box").hidden = nudge === null;
  if (nudge) {
    gray($("nudged"), nudge.image, 1);
    $("nudge-label").textContent = `now ${className(nudge.prediction)} (p ${nudge.probabilities[nudge.prediction].toFixed(2)})`;
  }
  const predicted = className(answer.prediction);
  $("explain-note").textContent = `Saliency: the gradient of class ${predicted}'s ` +
    "score Z with respect to each pixel, from FCLayer_Softmax.backpropagate_dZ(one-hot) and " +
    "each layer's backpropagate, down to the image. " + (nudge ?
    `Nudge: every pixel moved by ${nudge.step} along the sign of the loss's gradient ` +
    `(FGSM) turns the ${predicted} into a ${className(nudge.prediction)}.` :
    `No nudge up to ${answer.largest_step} per pixel changes the answer.`);
}

// ---------------------------------------------------------------- charts
// A small line chart: series [{points: [[x, y], ...], color, label, dots}], axes from the
// data, the y axis named, the legend below (wrapped onto more rows when it must).
function lineChart(canvas, series, {xLabel = "images", yLabel = "", yMin = null,
                                    empty = "no data yet"} = {}) {
  const width = canvas.clientWidth || 400, height = canvas.clientHeight || 200;
  canvas.width = width; canvas.height = height;
  const c = canvas.getContext("2d");
  c.fillStyle = "#0b0f13"; c.fillRect(0, 0, width, height);
  c.font = "11px system-ui";
  const rows = legendRows(c, series, width - 56);
  canvas.dataset.legend = series.map((s) => s.label).join("|");
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
  const left = 56, right = 10, top = 10, bottom = 18 + 13 * Math.max(rows.length, 1);
  c.fillStyle = "#8b98a5";
  if (yLabel) {
    c.save(); c.translate(12, top + (height - top - bottom) / 2); c.rotate(-Math.PI / 2);
    c.textAlign = "center"; c.fillText(yLabel, 0, 0); c.restore();
  }
  if (!all.length) {
    c.strokeStyle = "#2b3640";
    c.strokeRect(left, top, width - left - right, height - top - bottom);
    c.textAlign = "left"; c.fillText(empty, left + 8, top + 20);
    c.fillText(xLabel, width - right - c.measureText(xLabel).width, height - bottom + 14);
    return;
  }
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]), x0 + 1);
  const y0 = yMin === null ? Math.min(...all.map((p) => p[1])) : yMin;
  const y1 = Math.max(...all.map((p) => p[1]), y0 + 1e-6);
  const X = (x) => left + (x - x0) / (x1 - x0) * (width - left - right);
  const Y = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  c.strokeStyle = "#2b3640"; c.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {   // grid and y ticks
    const y = y0 + (y1 - y0) * k / 4;
    c.beginPath(); c.moveTo(left, Y(y)); c.lineTo(width - right, Y(y)); c.stroke();
    c.textAlign = "right"; c.fillText(y.toPrecision(2), left - 4, Y(y) + 4);
  }
  const axis = height - bottom + 14;
  c.textAlign = "left"; c.fillText(Math.round(x0).toLocaleString(), left, axis);
  c.textAlign = "right"; c.fillText(Math.round(x1).toLocaleString() + " " + xLabel, width - right, axis);
  for (const s of series) plotSeries(c, s, X, Y);
  rows.forEach((row, k) => row.forEach(({s, x}) => {
    c.fillStyle = s.color; c.textAlign = "left";
    c.fillText(s.label, left + x, height - 4 - 13 * (rows.length - 1 - k));
  }));
}

function plotSeries(c, s, X, Y) {
  c.strokeStyle = c.fillStyle = s.color; c.lineWidth = 1.6;
  const points = s.points.filter((p) => Number.isFinite(p[1]));
  if (s.dots) {
    for (const p of points) { c.beginPath(); c.arc(X(p[0]), Y(p[1]), 2.5, 0, 7); c.fill(); }
  } else {
    c.beginPath();
    points.forEach((p, i) => (i ? c.lineTo(X(p[0]), Y(p[1])) : c.moveTo(X(p[0]), Y(p[1]))));
    c.stroke();
  }
}

// The legend's labels placed left to right, a new row when one would not fit.
function legendRows(c, series, room) {
  const rows = [];
  let row = [], x = 6;
  for (const s of series) {
    const w = c.measureText(s.label).width + 16;
    if (row.length && x + w > room) { rows.push(row); row = []; x = 6; }
    row.push({s, x});
    x += w;
  }
  if (row.length) rows.push(row);
  return rows;
}

function smooth(points, key, alpha = 0.1) {   // exponential moving average, as TensorBoard does
  let value = null;
  return points.map((p) => {
    value = value === null ? p[key] : value + alpha * (p[key] - value);
    return [p.images, value];
  });
}

function sparkline(canvas, values) {
  canvas.width = 90; canvas.height = 22;
  const c = canvas.getContext("2d"), finite = values.filter((v) => v !== null && Number.isFinite(v));
  c.fillStyle = "#0b0f13"; c.fillRect(0, 0, 90, 22);
  if (finite.length < 2) return;
  const lo = Math.min(...finite), hi = Math.max(...finite, lo + 1e-12);
  c.strokeStyle = "#f0883e"; c.beginPath();
  values.forEach((v, i) => {
    if (v === null) return;
    const x = i / (values.length - 1) * 88 + 1, y = 20 - (v - lo) / (hi - lo) * 18;
    i ? c.lineTo(x, y) : c.moveTo(x, y);
  });
  c.stroke();
}

// ---------------------------------------------------------------- training
let trainVersion = null, trainState = null, modelVersion = null, polling = false;
const LIVE = ["learning_rate", "momentum", "batch_size", "weight_decay"];
const overlaid = new Set();

function unpack(p) {   // the server's packed arrays: signed bytes times scale / 127
  const bytes = atob(p.q), q = new Int8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) q[i] = bytes.charCodeAt(i) << 24 >> 24;
  return {shape: p.shape, scale: p.scale, at: (i) => q[i] * p.scale / 127, q};
}

// The Train panel starts from the command line's settings for the served model's layers.
function fillDefaults(defaults) {
  for (const [name, value] of Object.entries(defaults || {})) {
    const field = $("t-" + name);
    if (field) field.value = value;
  }
}

function formSettings() {
  const settings = {layers: $("t-layers").value, dataset: $("t-dataset").value,
    optimizer: $("t-optimizer").value, schedule: $("t-schedule").value,
    engine: $("t-engine").value || null};
  for (const name of [...LIVE, "epochs", "limit", "seed"]) {
    const text = $("t-" + name).value.trim();
    if (text !== "") settings[name] = Number(text);
  }
  if (settings.optimizer === "sgd") delete settings.momentum;
  if (settings.dataset === "own" && own) settings.augment = own.suggested.augment;
  return settings;
}

// What Start and Step send: the form, and what a link or a loaded run replays (share.js).
function runSettings() {
  const settings = {...formSettings(), ...replayExtra()};
  const edits = replayEdits();
  if (edits.length) settings.edits = edits;
  return settings;
}

async function trainCall(path, body) {
  try {
    const answer = await call(path, body === undefined ? {} : body);   // always a POST
    $("t-message").textContent = "";
    pollSoon();
    return answer;
  } catch (error) {
    $("t-message").textContent = error.message;
    return null;
  }
}

$("t-start").addEventListener("click", () => {
  const state = trainState && trainState.run;
  if (state && state.status === "paused") trainCall("/api/train/resume");
  else trainCall("/api/train/start", runSettings());
});
$("t-pause").addEventListener("click", () => trainCall("/api/train/pause"));
$("t-step").addEventListener("click", () => {
  const alive = trainState && trainState.run && ["running", "paused", "starting"]
    .includes(trainState.run.status);
  trainCall("/api/train/step", alive ? {} : runSettings());
});
$("t-reset").addEventListener("click", () => trainCall("/api/train/reset"));
$("t-inspect").addEventListener("click", () => inspectStep({source: "next"}, true));
for (const name of LIVE) $("t-" + name).addEventListener("change", () => applyLive(name));

// What the server would say of a live setting's value (its range, from /api/model), or "".
function outOfRange(name, value) {
  const limit = model.limits && model.limits[name];
  if (!limit) return "";
  const inside = (limit.low_open ? value > limit.low : value >= limit.low) &&
    (limit.high_open ? value < limit.high : value <= limit.high) &&
    (!limit.whole || Number.isInteger(value));
  return inside ? "" : `must be ${limit.text}, got ${value}`;
}

// A live edit (Enter or leaving the field): a number the run takes from its next step; a
// refused one puts back the value the run keeps, and says so.
async function applyLive(name) {
  const run = trainState && trainState.run, field = $("t-" + name);
  if (!run || !["running", "paused"].includes(run.status)) return;
  const label = name.replace("_", " "), kept = run.live[name], text = field.value.trim();
  const keep = () => { field.value = kept === null || kept === undefined ? "" : kept; };
  if (text === "" || !Number.isFinite(Number(text))) {
    keep();
    $("t-message").textContent = `${label}: not a number (the field was empty or held text); ` +
      `the run keeps ${label} ${kept}.`;
    return;
  }
  const refused = outOfRange(name, Number(text));
  if (refused) {
    keep();
    $("t-message").textContent = `${label} ${refused}; the run keeps ${label} ${kept}.`;
    return;
  }
  const answer = await trainCall("/api/train/set", {[name]: Number(text)});
  if (answer) {
    $("t-message").textContent = name === "batch_size"   // a batch is cut at an epoch's start
      ? `${label} ${Number(text)} from the next epoch (the batches of this one are cut already).`
      : `${label} ${Number(text)} from step ${answer.after_step + 1}.`;
  } else {
    keep();
    $("t-message").textContent += ` The run keeps ${label} ${kept}.`;
  }
}

function pollSoon() { setTimeout(poll, 50); }

async function poll() {
  if (polling) return;
  polling = true;
  try {
    const answer = await call("/api/train/state" + (trainVersion === null ? "" : `?since=${trainVersion}`));
    if (!answer.unchanged) {
      trainVersion = answer.version;
      trainState = answer;
      await renderTraining(answer);
    }
  } catch (error) {
    $("t-message").textContent = "Error: " + error.message;
  }
  polling = false;
}

function startTraining() {
  setInterval(poll, 250);   // live views at up to 4 updates a second
  poll();
}

// The charts are drawn at their size on screen: again when it changes (a phone turned).
let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => {
    if (!trainState) return;
    renderCharts(trainState.run);
    runsSignature = "";
    renderRuns();
  }, 150);
});

let weightsVersion = null;

// The panels of the net shown (prediction, every layer, filters, multiply-adds) follow its
// weights once they settle: when a run pauses or ends, not at each snapshot of a running
// one. (A forward pass in another thread while a run trains can change BLAS's threads
// under it, and with them the last bits of the run.)
async function followTheNet(state, run) {
  if (run && run.status === "running") return;
  if (state.model_version !== modelVersion) {
    const first = modelVersion === null;
    modelVersion = state.model_version;
    weightsVersion = state.weights_version;
    if (!first) {   // another net is shown now: rebuild the panels, predict the digit again
      const names = () => JSON.stringify(model.class_names || DIGITS);
      const before = names();
      await loadModel();
      if (padShowsTestImage && names() !== before) {   // its label named other classes
        $("truth").textContent = "The pad shows a test image of the net shown before; " +
          "Random test image picks one of this net's.";
      }
      if (last) predict({image: last.image});
    }
  } else if (state.weights_version !== weightsVersion) {
    weightsVersion = state.weights_version;
    await refreshWeights();
  }
}

// Start, Pause, Step and Stop enabled only when the server would do what they say.
function renderButtons(run) {
  const status = run ? run.status : null;
  const active = ["running", "paused", "starting"].includes(status);
  $("t-start").textContent = status === "paused" ? "Resume" : "Start";
  $("t-start").disabled = active && status !== "paused";
  $("t-pause").disabled = status !== "running";
  $("t-step").disabled = active && status !== "paused";
  $("t-reset").disabled = !active;
  $("t-inspect").disabled = status !== "paused";
  for (const id of ["t-layers", "t-dataset", "t-optimizer", "t-schedule", "t-epochs", "t-limit",
                    "t-engine", "t-seed", "t-replay"]) {
    $(id).disabled = active;
  }
}

const percent = (value) => `${(100 * value).toFixed(1)}%`;

function runStatus(run) {
  if (!run) return "no run yet";
  const total = run.settings.epochs, going = ["running", "paused", "starting"].includes(run.status);
  return `run ${run.number}: ${run.status}, step ${run.step}, ` + (going
    ? `epoch ${Math.min(run.epoch + 1, total)} of ${total}`   // the one in progress
    : `${run.epoch} of ${total} epoch${total === 1 ? "" : "s"} completed`) +
    `, ${run.images.toLocaleString()} images` +
    (run.status === "running" ? `, ${Math.round(run.images_per_s).toLocaleString()} images/s` : "") +
    (run.test ? `, test error rate ${percent(run.test.ce)} on ${run.test.images.toLocaleString()} ` +
     "test images" : "");
}

function renderCharts(run) {
  const none = {empty: "No run yet: press Start (or Step) above."};
  const on = run ? run.measured.on : "validation";   // "test" where no validation set is held out
  lineChart($("loss-chart"), run ? [
    {points: smooth(run.train, "cce"), color: "#f0883e", label: "training"},
    {points: run.validation.map((p) => [p.images, p.cce]), color: "#3fb0ff",
     label: on, dots: true}] : [], {yMin: 0, yLabel: "loss", ...none});
  lineChart($("error-chart"), run ? [
    {points: smooth(run.train, "ce"), color: "#f0883e", label: "training"},
    {points: run.validation.map((p) => [p.images, p.ce]), color: "#3fb0ff",
     label: on, dots: true}] : [], {yMin: 0, yLabel: "error rate", ...none});
  if (run) $("measured-note").textContent = on === "validation"
    ? `Validation: ${run.measured.images} held-out images, about once a second.`
    : `Test: this run holds no validation images out, so the dots measure ` +
      `${run.measured.images} of its test images, about once a second.`;
}

async function renderTraining(state) {
  const select = $("t-dataset"), run = state.run;
  if (!select.options.length) {
    select.innerHTML = state.datasets.map((d) =>
      `<option value="${d}">${datasetName(d)}</option>`).join("");
    $("t-engine").innerHTML = ["<option value=''>default</option>",
      ...model.engines.map((e) => `<option>${e}</option>`)].join("");
    applyHash();   // a shared link's settings fill the form (share.js)
    if (alive(run)) {   // a page opened on a run that goes on: its settings, then its live
      fillForm(run.settings, [], `run ${run.number}`);   // values, edits included (share.js)
      for (const [name, value] of Object.entries(run.live)) {
        if (value !== null && value !== undefined) $("t-" + name).value = value;
      }
    }
  }
  $("run-status").textContent = runStatus(run);
  if (run && run.message) $("t-message").textContent = run.message;
  renderButtons(run);
  inspectorRunState(run);
  sharedRun(run);
  renderCharts(run);
  const views = state.views || {};
  if (views.stream) renderStream(views.stream, views.class_names);  // the run's net's names
  if (views.probe) renderProbe(views);
  if (views.stats) renderStats(views.stats);
  await followTheNet(state, run);
  renderRuns();
}

function renderStream(stream, names) {
  $("stream").innerHTML = stream.map((s, k) => {
    const right = s.top[0][0] === s.label;
    return `<figure class="${right ? "right" : "wrong"}"><canvas data-stream="${k}"></canvas>
      <figcaption>${s.top.map(([c, p]) => `${escape(nameIn(names, c))} <span>${p.toFixed(2)}</span>`).join("<br>")}${
        right ? "" : `<br><span>truly ${escape(nameIn(names, s.label))}</span>`}
      </figcaption></figure>`;
  }).join("");
  stream.forEach((s, k) => gray($("stream").querySelector(`[data-stream="${k}"]`), s.image, 1));
}

function renderProbe(views) {
  const probe = views.probe, name = (c) => nameIn(views.class_names, c);
  $("probe-note").textContent = (probe.label === null ? "your drawing" : `a test image (a ${name(probe.label)})`) +
    `, predicted ${name(probe.prediction)}; L = cross-entropy against class ${name(probe.loss_class)}`;
  const box = $("probe");
  const signature = probe.layers.map((l) => l.name + l.shape.join("x")).join("|");
  if (box.dataset.signature !== signature) {
    box.dataset.signature = signature;
    box.innerHTML = probe.layers.map((layer, i) => {
      const maps = layer.shape.length === 3, count = maps ? Math.min(layer.shape[2], 16) : 0;
      const cells = (kind) => maps
        ? `<div class="maps">${Array.from({length: count}, (_, f) =>
            `<canvas data-probe="${i}" data-kind="${kind}" data-filter="${f}"></canvas>`).join("")}</div>`
        : `<canvas class="strip" data-probe="${i}" data-kind="${kind}"></canvas>`;
      const more = maps && layer.shape[2] > count ? ` (first ${count} of ${layer.shape[2]} channels)` : "";
      return `<div class="probe-layer"><h3>${layer.name} <span class="note">(${layer.shape.join(", ")})${more}</span></h3>
        <div class="pair"><div><span class="note">A</span>${cells("A")}</div>
        <div><span class="note">${i === probe.layers.length - 1 ? "dL/dZ (softmax and loss together)" : "dL/dA"}</span>${cells("dA")}</div></div></div>`;
    }).join("");
  }
  probe.layers.forEach((layer, i) => {
    for (const kind of ["A", "dA"]) {
      const data = unpack(layer[kind]);
      const [h, w, c] = layer.shape;
      box.querySelectorAll(`canvas[data-probe="${i}"][data-kind="${kind}"]`).forEach((canvas) => {
        if (layer.shape.length === 3) {
          const f = +canvas.dataset.filter;
          let scale = 0;
          for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) scale = Math.max(scale, Math.abs(data.at((r * w + q) * c + f)));
          signed(canvas, h, w, (r, q) => data.at((r * w + q) * c + f), scale);
        } else {
          const values = Array.from({length: data.q.length}, (_, k) => data.at(k));
          strip(canvas, values, i === probe.layers.length - 1
            ? Array.from(values, (_, c) => name(c)) : null);
        }
      });
    }
  });
  const filters = views.filters;
  if (!filters) { $("probe-filters").innerHTML = ""; return; }
  const W = unpack(filters.W), [fw, , nf] = filters.W.shape;
  const dW = filters.dW ? unpack(filters.dW) : null;
  const canvases = (kind) => Array.from({length: nf}, (_, f) =>
    `<canvas data-wkind="${kind}" data-filter="${f}"></canvas>`).join("");
  $("probe-filters").innerHTML = `<h3>Layer ${filters.layer}'s filters W and the last step's
    dW <span class="note">(channel 0; W on one scale, dW on another)</span></h3>
    <div class="filter-row"><span class="note">W</span><div class="maps">${canvases("W")}</div></div>` +
    (dW ? `<div class="filter-row"><span class="note">dW</span><div class="maps">${canvases("dW")}</div></div>` : "");
  for (const [kind, data] of [["W", W], ["dW", dW]]) {
    if (!data) continue;
    $("probe-filters").querySelectorAll(`canvas[data-wkind="${kind}"]`).forEach((canvas) => {
      const f = +canvas.dataset.filter;
      signed(canvas, fw, fw, (a, b) => data.at((a * fw + b) * nf + f), data.scale);
    });
  }
}

function renderStats(stats) {
  const keys = ["mean", "std", "dead", "grad_norm", "update_ratio"];
  const heads = ["mean A", "spread A", "dead ReLU", "|dW|", "|step| / |W|"];
  const table = $("stats");
  const names = stats.map((s) => s.name).join("|");
  if (table.dataset.rows !== names) {
    table.dataset.rows = names;
    table.innerHTML = `<tr><th>layer</th>${heads.map((h) => `<th>${h}</th>`).join("")}</tr>` +
      stats.map((s, i) => `<tr><td>${s.name}</td>${keys.map((k) =>
        `<td><canvas data-stat="${i}-${k}" width="90" height="22" hidden></canvas><span data-value="${i}-${k}"></span></td>`).join("")}</tr>`).join("");
  }
  stats.forEach((s, i) => keys.forEach((k) => {
    const values = s[k], latest = values[values.length - 1];
    const cell = table.querySelector(`[data-value="${i}-${k}"]`);
    const canvas = table.querySelector(`[data-stat="${i}-${k}"]`);
    canvas.hidden = latest === null || latest === undefined;
    if (canvas.hidden) { cell.textContent = "-"; return; }
    sparkline(canvas, values);
    cell.textContent = k === "dead" ? `${(100 * latest).toFixed(0)}%` : latest.toExponential(1);
  }));
}

let runsSignature = "";

async function renderRuns() {
  const {runs} = await call("/api/runs");
  const table = $("runs");
  const signature = runs.map((r) => `${r.number}:${r.status}:${r.epoch}:${r.has_model}:` +
    `${overlaid.has(r.number)}`).join() +
    (runs.length ? Math.floor(runs[runs.length - 1].step / 200) : "");
  if (signature !== runsSignature) {
    runsSignature = signature;
    buildRuns(table, runs);
  }
  drawOverlay(runs);
}

// One row per run: its settings, how far it got, its error rates (which is which: the
// card's note), its downloads; a failed run's reason on a row of its own.
function runRow(r) {
  const s = r.settings, val = r.validation[r.validation.length - 1];
  const edits = r.edits.length ? `, ${r.edits.length} edit${r.edits.length > 1 ? "s" : ""}` : "";
  const row = `<tr><td><input type="checkbox" data-run="${r.number}" aria-label="overlay run ${r.number}"
      ${overlaid.has(r.number) ? "checked" : ""}></td>
    <td>${r.number}</td><td>${r.status}</td>
    <td class="layers-cell" title="${escape(s.layers)}">${escape(s.layers)}</td>
    <td>${s.optimizer} lr ${s.learning_rate}, batch ${s.batch_size}, ${escape(datasetName(s.dataset))}, seed ${s.seed}${edits}</td>
    <td>${r.epoch} of ${s.epochs}</td><td>${r.step}</td>
    <td>${val ? percent(val.ce) + (r.measured.on === "test" ? " (test images)" : "") : "-"}</td>
    <td>${r.test ? percent(r.test.ce) : "-"}</td>
    <td>${r.has_model ? `<a href="/api/runs/${r.number}/model.npz" download>model</a> ` : ""}
      <a href="/api/runs/${r.number}/history.csv" download>csv</a>
      <a href="/api/runs/${r.number}/history.json" download>json</a></td></tr>`;
  const failed = ["failed", "diverged"].includes(r.status) && r.message;
  return row + (failed ? `<tr class="reason"><td></td><td colspan="9">run ${r.number} ` +
    `${r.status}: ${escape(r.message)}</td></tr>` : "");
}

function buildRuns(table, runs) {
  if (!runs.length) {
    table.innerHTML = `<tr><td class="note">No runs yet: press Start (or Step) in the Train
      panel.</td></tr>`;
    return;
  }
  table.innerHTML = "<tr><th>overlay</th><th>run</th><th>status</th><th>layers</th>" +
    "<th>settings</th><th>epochs</th><th>steps</th><th>validation error</th>" +
    "<th>test error</th><th>download</th></tr>" + runs.map(runRow).join("");
  table.querySelectorAll("input[data-run]").forEach((box) => box.addEventListener("change", () => {
    box.checked ? overlaid.add(+box.dataset.run) : overlaid.delete(+box.dataset.run);
    renderRuns();
  }));
}

function drawOverlay(runs) {
  const chosen = runs.filter((r) => overlaid.has(r.number));
  $("overlay-chart").hidden = $("overlay-title").hidden = chosen.length < 2;
  if (chosen.length >= 2) {
    const colors = ["#f0883e", "#3fb0ff", "#7ee787", "#d2a8ff", "#ffa198", "#e3b341"];
    lineChart($("overlay-chart"), chosen.flatMap((r, k) => [
      {points: smooth(r.train, "cce"), color: colors[k % colors.length], label: `run ${r.number} training`},
      {points: r.validation.map((p) => [p.images, p.cce]), color: colors[k % colors.length],
       label: `run ${r.number} ${r.measured.on}`, dots: true}]), {yMin: 0, yLabel: "loss"});
  }
}

// ---------------------------------------------------------------- your own classes
// The examples live on the server (GET /api/own); each change answers with the new state.
let own = null;

async function ownCall(path, body) {
  try {
    const state = await call(path, body);
    $("own-message").textContent = "";
    renderOwn(state);   // which may say the classes are ready to train
  } catch (error) {
    $("own-message").textContent = "Error: " + error.message;
  }
}

function renderOwn(state) {
  own = state;
  const chosen = $("own-class").selectedOptions[0]?.textContent;  // stays chosen when it stays
  $("own-class").innerHTML = state.classes.map((c, k) =>
    `<option value="${k}"${c.name === chosen ? " selected" : ""}>${escape(c.name)}</option>`).join("");
  $("own-add").disabled = $("own-files").disabled = !state.classes.length;
  $("own-grid").innerHTML = state.classes.map((c, k) => `<div class="own-class">
    <h3>${escape(c.name)} <span class="note">${c.count} example${c.count === 1 ? "" : "s"}</span></h3>
    <div class="thumbs">${state.examples.filter((e) => e.class === k).map((e) =>
      `<figure><canvas data-own="${e.id}" width="28" height="28"></canvas>
       <button class="remove" data-remove="${e.id}" title="remove this example">×</button></figure>`).join("")}
    </div></div>`).join("") || `<p class="note">No classes yet.</p>`;
  for (const e of state.examples) gray($("own-grid").querySelector(`[data-own="${e.id}"]`), e.image, 1);
  const names = state.classes.map((c) => c.name).join(", ");
  if (document.activeElement !== $("own-names")) $("own-names").value = names;
  $("own-message").textContent = state.ready ? "Ready to train: choose \"your classes\" below." : "";
}

$("own-set").addEventListener("click", () => ownCall("/api/own/classes",
  {names: $("own-names").value.split(",").map((n) => n.trim()).filter((n) => n)}));
$("own-add").addEventListener("click", () => {
  if (padShowsTestImage) {   // a test image of the net shown is not an example of yours
    $("own-message").textContent = "The pad shows a test image, not a drawing: draw an " +
      "example first (drawing clears it).";
    return;
  }
  ownCall("/api/own/examples", {class: Number($("own-class").value),
    png: pad.toDataURL("image/png"), copies: Number($("own-copies").value) || 0});
});
$("own-grid").addEventListener("click", (event) => {
  const id = event.target.dataset.remove;
  if (id) ownCall("/api/own/remove", {id: Number(id)});
});
$("own-files").addEventListener("change", async (event) => {
  for (const file of event.target.files) {   // any picture the browser reads, sent as PNG
    const picture = await createImageBitmap(file).catch(() => null);
    if (!picture) { $("own-message").textContent = `Error: ${file.name} is not a picture`; continue; }
    const canvas = document.createElement("canvas");
    const scale = Math.min(1, 560 / Math.max(picture.width, picture.height));
    canvas.width = Math.round(picture.width * scale); canvas.height = Math.round(picture.height * scale);
    canvas.getContext("2d").drawImage(picture, 0, 0, canvas.width, canvas.height);
    await ownCall("/api/own/examples", {class: Number($("own-class").value),
      png: canvas.toDataURL("image/png"), copies: Number($("own-copies").value) || 0});
  }
  event.target.value = "";
});
// Your classes train with enough epochs for a few thousand steps and small shifts.
// Leaving them gives back the epochs the form had before, if the suggestion still stands.
let epochsBeforeOwn = null;   // [the epochs before your classes, the one suggested]
$("t-dataset").addEventListener("change", async () => {
  const epochs = $("t-epochs"), had = epochs.value;
  if ($("t-dataset").value !== "own") {
    if (epochsBeforeOwn && epochs.value === String(epochsBeforeOwn[1])) epochs.value = epochsBeforeOwn[0];
    epochsBeforeOwn = null;
  } else {
    try {
      renderOwn(await call("/api/own"));
    } catch (error) {
      $("t-message").textContent = "Your classes: " + error.message;
      return;
    }
    if ($("t-dataset").value !== "own") return;   // another was chosen meanwhile
    epochsBeforeOwn = [had, own.suggested.epochs];
    epochs.value = own.suggested.epochs;
  }
  epochs.dispatchEvent(new Event("change", {bubbles: true}));   // the address follows
});
call("/api/own").then(renderOwn).catch(() => {});
