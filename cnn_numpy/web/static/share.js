// Experiments that can be shared.  The Train panel's settings live in the address, after
// "#" (layers, dataset, optimizer, learning_rate, momentum, batch_size, weight_decay,
// schedule, epochs, limit, engine, seed, and a run's live edits), so a copied link opens
// the same form and Start replays the same run to the same weights (the server replays
// the edits at their steps).  A run's JSON download loads back the same way, and
// "hide=train,runs" in the address hides panels (a lesson that shows only what it needs).
// Uses app.js's $, formSettings and trainState.
"use strict";

const SHARED = ["layers", "dataset", "optimizer", "learning_rate", "momentum", "batch_size",
                "weight_decay", "schedule", "epochs", "limit", "engine", "seed"];
const EXTRA = ["augment", "validation"];   // not in the form, but part of a run's settings
let replay = {edits: [], extra: {}, from: ""};   // what Start replays besides the form
let sharedNumber = null;                          // the alive run the address describes

const replayEdits = () => replay.edits;
const replayExtra = () => replay.extra;
const hashParams = () => new URLSearchParams(location.hash.slice(1));
const alive = (run) => !!run && ["running", "paused", "starting"].includes(run.status);

// The address's settings into the form, once the form's choices are known.
function applyHash() {
  const params = hashParams(), settings = {};
  for (const name of [...SHARED, ...EXTRA]) if (params.has(name)) settings[name] = params.get(name);
  let edits = [];
  try {
    edits = JSON.parse(params.get("edits") || "[]");
  } catch (error) {
    $("t-message").textContent = "This link's edits are not valid JSON; they are left out.";
  }
  if (Object.keys(settings).length) fillForm(settings, edits, "this link");
  if (!alive(trainState && trainState.run)) {
    writeHash({...formSettings(), ...replay.extra}, replay.edits);
  }
}

function fillForm(settings, edits, from) {
  const refused = [];
  for (const name of SHARED) {
    if (!(name in settings)) continue;
    const field = $("t-" + name), value = settings[name] === null ? "" : String(settings[name]);
    if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === value)) {
      refused.push(`${name} ${value || "(none)"} is not offered here`);
      continue;
    }
    field.value = value;
  }
  replay.extra = {};
  for (const name of EXTRA) {
    const value = settings[name];
    if (value !== undefined && value !== null && value !== "") replay.extra[name] = Number(value);
  }
  replay.edits = (Array.isArray(edits) ? edits : []).map((e) =>
    ({after_step: Number(e.after_step), name: e.name, value: Number(e.value)}));
  replay.from = from;
  renderReplayNote(refused);
}

function renderReplayNote(refused = []) {
  const edits = replay.edits;
  const list = edits.slice(0, 4).map((e) => `${e.name.replace("_", " ")} ${e.value} after step ` +
    `${e.after_step}`).join(", ") + (edits.length > 4 ? ", ..." : "");
  $("t-replay-note").innerHTML = (edits.length ? `Start replays ${edits.length} live edit` +
    `${edits.length > 1 ? "s" : ""} from ${escape(replay.from)}: ${escape(list)}. ` +
    `<button id="t-forget" type="button">Forget them</button> ` : "") +
    (refused.length ? escape(`From ${replay.from}: ${refused.join("; ")}.`) : "");
  const forget = $("t-forget");
  if (forget) forget.addEventListener("click", () => {
    replay = {edits: [], extra: {}, from: ""};
    renderReplayNote();
    writeHash({...formSettings()}, []);
  });
}

function writeHash(settings, edits) {
  const params = new URLSearchParams();
  for (const name of [...SHARED, ...EXTRA]) {
    const value = settings[name];
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  if (edits && edits.length) params.set("edits", JSON.stringify(edits));
  const hide = hashParams().get("hide");
  if (hide) params.set("hide", hide);
  const hash = "#" + params.toString();
  if (hash !== location.hash) history.replaceState(null, "", hash);
}

// While a run is alive the address is that run (its settings as it started, its edits so
// far), and once more when it ends; otherwise the form.  A run that ended with live edits
// leaves its settings as it started in the form, and its edits to replay (as its link
// would): the form and the address say the same, and "Forget them" starts afresh.
function sharedRun(run) {
  if (alive(run)) {
    sharedNumber = run.number;
    writeHash(run.settings, run.edits);
  } else if (run && run.number === sharedNumber) {
    sharedNumber = null;
    if (run.edits.length) fillForm(run.settings, run.edits, `run ${run.number}`);
    writeHash(run.settings, run.edits);
  }
}

$("train-form").addEventListener("change", () => {
  if (!alive(trainState && trainState.run)) writeHash({...formSettings(), ...replay.extra}, replay.edits);
});

$("t-replay").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  try {
    const data = JSON.parse(await file.text());
    const settings = data && data.settings;
    if (!settings || typeof settings.layers !== "string") {
      throw new Error("it holds no run settings with layers (the json download of a run in " +
                      "Runs has them)");
    }
    fillForm(settings, settings.edits || [], file.name);
    writeHash({...formSettings(), ...replay.extra}, replay.edits);
    $("t-message").textContent = `${file.name}: its settings are in the form; Start replays ` +
      "the run.";
  } catch (error) {
    $("t-message").textContent = `${file.name} could not be loaded: ${error.message}`;
  }
  event.target.value = "";
});

function hidePanels(names) {
  let hidden = 0;
  for (const name of names) {
    const card = $(`${name}-card`);
    if (card) { card.classList.add("hidden-by-link"); hidden++; }
  }
  if (!hidden) return;
  const note = document.createElement("p");
  note.id = "hidden-note";
  note.className = "note";
  note.innerHTML = `This link hides ${hidden} panel${hidden > 1 ? "s" : ""}. ` +
    `<a href="#" id="show-all">Show every panel</a>`;
  document.querySelector("header").append(note);
  $("show-all").addEventListener("click", (event) => {
    event.preventDefault();
    document.querySelectorAll(".hidden-by-link").forEach((c) => c.classList.remove("hidden-by-link"));
    note.remove();
  });
}

hidePanels((hashParams().get("hide") || "").split(",").map((s) => s.trim()).filter(Boolean));
