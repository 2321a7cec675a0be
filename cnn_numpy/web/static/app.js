// cnn-numpy live: draw a digit, see every layer.  Plain JavaScript, no libraries: every number
// shown comes from the server, which runs cnn-numpy's NumPy layers (see /api/* in the README).
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ink = pad.getContext("2d");
let model = null;      // GET /api/model
let last = null;       // the last POST /api/predict answer
let busy = false, pending = false, drawing = false, previous = null;

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
  pad.addEventListener(name, () => {
    if (!drawing) return;
    drawing = false;
    predictPad();
  });
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
  $("truth").textContent = "";
  predict({image: Array.from({length: 28}, () => new Array(28).fill(0))});
});

$("random").addEventListener("click", async () => {
  const answer = await call("/api/random-image");
  clearPad();
  const cell = pad.width / 28;
  answer.image.forEach((row, r) => row.forEach((v, c) => {
    const g = Math.round(255 * v);
    ink.fillStyle = `rgb(${g},${g},${g})`;
    ink.fillRect(c * cell, r * cell, cell, cell);
  }));
  $("truth").textContent = `Test image ${answer.index}: its true label is ${answer.label}.`;
  predict({image: answer.image});
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

function diverging(canvas, rows, scale) {   // blue < 0 < orange, one scale for all
  const h = rows.length, w = rows[0].length;
  canvas.width = w; canvas.height = h;
  const context = canvas.getContext("2d"), picture = context.createImageData(w, h);
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) {
    const t = Math.max(-1, Math.min(1, rows[r][c] / scale)), i = 4 * (r * w + c);
    const rgb = t >= 0 ? [240, 136, 62] : [63, 176, 255];
    for (let k = 0; k < 3; k++) picture.data[i + k] = Math.round(24 + (rgb[k] - 24) * Math.abs(t));
    picture.data[i + 3] = 255;
  }
  context.putImageData(picture, 0, 0);
}

const channel = (values, f) => values.map((row) => row.map((cell) => cell[f]));
const maxAbs = (values) => Math.max(1e-12, ...values.flat(Infinity).map(Math.abs));

function renderBars(probabilities, prediction) {
  const bars = $("bars");
  if (!bars.children.length) {
    for (let k = 0; k < probabilities.length; k++) {
      bars.insertAdjacentHTML("beforeend", `<div class="bar" data-class="${k}"><b>${k}</b>
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
    });
    box.dataset.built = "yes";
  }
  answer.layers.forEach((layer, i) => {
    if (layer.shape.length === 3) {
      const scale = maxAbs(layer.values);
      box.querySelectorAll(`canvas[data-layer="${i}"]`).forEach((canvas) =>
        gray(canvas, channel(layer.values, +canvas.dataset.filter), scale));
    } else {
      strip(box.querySelector(`canvas[data-layer="${i}"]`), layer.values);
    }
  });
}

function strip(canvas, values) {   // a dense layer as bars, one column per unit
  canvas.width = Math.min(values.length, 800);
  const context = canvas.getContext("2d"), scale = maxAbs(values);
  const per = values.length / canvas.width;
  context.fillStyle = "#0b0f13";
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let x = 0; x < canvas.width; x++) {
    const v = values[Math.floor(x * per)] / scale;
    context.fillStyle = v >= 0 ? "#3fb0ff" : "#f0883e";
    const h = Math.abs(v) * canvas.height;
    context.fillRect(x, canvas.height - h, per >= 1 ? 1 : Math.max(1, 1 / per - 1), h);
  }
}

function renderFilters() {
  const first = model.first_conv;
  if (!first) return;
  const W = first.weights, nf = W[0][0][0].length, scale = maxAbs(W);
  let html = `<h3>First convolution's filters (${first.filter_width} x ${first.filter_width},
    channel 0; blue negative, orange positive)</h3><div class="maps">`;
  for (let f = 0; f < nf; f++) html += `<canvas data-weights="${f}" title="filter ${f}"></canvas>`;
  $("filters").innerHTML = html + "</div>";
  $("filters").querySelectorAll("canvas").forEach((canvas) => {
    const f = +canvas.dataset.weights;
    diverging(canvas, W.map((row) => row.map((cell) => cell[0][f])), scale);
  });
}

// The multiply-adds behind one output of the first conv layer, with the layer's numbers.
function explainPixel(event, canvas) {
  if (!last) return;
  const first = model.first_conv, f = +canvas.dataset.filter;
  const layer = last.layers[first.layer], [h, w] = layer.shape;
  const box = canvas.getBoundingClientRect();
  const r = Math.min(h - 1, Math.floor((event.clientY - box.top) / box.height * h));
  const c = Math.min(w - 1, Math.floor((event.clientX - box.left) / box.width * w));
  const fw = first.filter_width, top = r * first.stride - first.pad_top;
  const left = c * first.stride - first.pad_left;
  const window_ = [], filter = [], products = [];
  let sum = 0;
  for (let a = 0; a < fw; a++) {
    window_.push([]); filter.push([]); products.push([]);
    for (let b = 0; b < fw; b++) {
      const y = top + a, x = left + b;
      const v = y >= 0 && y < 28 && x >= 0 && x < 28 ? last.image[y][x] : 0;
      const k = first.weights[a][b][0][f];
      window_[a].push(v); filter[a].push(k); products[a].push(v * k);
      sum += v * k;
    }
  }
  const bias = first.bias[f], z = sum + bias, value = layer.values[r][c][f];
  const table = (caption, rows, digits) => `<table><caption>${caption}</caption>${rows.map(
    (row) => `<tr>${row.map((v) => `<td>${v.toFixed(digits)}</td>`).join("")}</tr>`).join("")}
    </table>`;
  const mac = $("mac");
  mac.hidden = false;
  mac.innerHTML = `<div><b>${layer.name}</b>, filter ${f}, output row ${r}, column ${c}</div>
    ${table("input window", window_, 3)} ${table("x filter", filter, 3)}
    ${table("= products", products, 3)}
    <div>sum of products ${sum.toFixed(4)} + bias ${bias.toFixed(4)} = ${z.toFixed(4)}` +
    (first.relu ? `; ReLU: max(${z.toFixed(4)}, 0) = ${Math.max(z, 0).toFixed(4)}` : "") +
    `<br>the layer computed <b id="mac-value">${value.toFixed(4)}</b></div>`;
  const mark = $("seen-mark");
  mark.hidden = false;
  Object.assign(mark.style, {left: `${100 * left / 28}%`, top: `${100 * top / 28}%`,
    width: `${100 * fw / 28}%`, height: `${100 * fw / 28}%`});
}

function render(answer) {
  last = answer;
  renderBars(answer.probabilities, answer.prediction);
  $("predicted").textContent = answer.prediction;
  $("timing").textContent = `forward pass: ${answer.milliseconds.toFixed(1)} ms (server)`;
  gray($("seen"), answer.image, 1);
  renderLayers(answer);
}

// ---------------------------------------------------------------- stride groups
let plan = null, steps = [], step = 0;

async function loadGroups(event) {
  if (event) event.preventDefault();
  const q = ["filter", "stride", "input"].map((k) => `${k}=${$("g-" + k).value}`).join("&");
  try {
    plan = await call("/api/stride-groups?" + q);
  } catch (error) {
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
    `of them for a single matrix product.` + (plan.untouched.length ?
    ` Hatched cells: ${plan.untouched.length} input cells no window touches.` : "");
}

$("groups-form").addEventListener("submit", loadGroups);
$("g-prev").addEventListener("click", () => { if (!steps.length) return;
  step = (step + steps.length - 1) % steps.length; drawStep(); });
$("g-next").addEventListener("click", () => { if (!steps.length) return;
  step = (step + 1) % steps.length; drawStep(); });

// ---------------------------------------------------------------- engines
$("engines").addEventListener("click", async () => {
  if (!last) return;
  const answer = await call("/api/engines", {image: last.image});
  $("engine-table").innerHTML = "<tr><th>engine</th><th>time</th><th>largest difference " +
    "from naive</th></tr>" + answer.engines.map((e) => `<tr><td>${e.engine}</td>` +
    `<td>${e.milliseconds.toFixed(1)} ms</td><td>${e.largest_difference.toExponential(1)}` +
    `</td></tr>`).join("");
});

// ---------------------------------------------------------------- start
(async () => {
  model = await call("/api/model");
  if (model.first_conv) {
    $("g-filter").value = model.first_conv.filter_width;
    $("g-stride").value = model.first_conv.stride;
  }
  $("g-input").value = model.input_shape[0];
  clearPad();
  renderFilters();
  loadGroups();
  $("random").click();
})();
