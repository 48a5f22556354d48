// dermtool serve: the page's logic. Talks only to this server (/api/...); no third-party code.
// One result, one set of probabilities: the outcome, the bars, the referral figure, the sentence on the
// answers and the heat map all follow the probabilities /api/predict returns (the fused ones when answers
// were given). A new photo starts a new patient (the answers are cleared) unless "same lesion or patient" is
// ticked. A photo the lesion check turns away shows no class at all. "Add another photo of this lesion"
// sends the lesion's photos together (/api/predict_lesion): the rejected ones are left out and listed, the
// rest combined by the model's multi-photo rule.
import { lesionCheckText, percent, renderBars, renderFusion, setStatus, showError } from "./results.js";
import {
  clearAnswers, keepAnswers, readQuestionnaire, renderQuestionnaire, showQuestionProblem, unreadAnswers,
} from "./questionnaire.js";

const state = {
  model: null, requestId: 0, photoId: 0, previewUrl: null, file: null, results: 0, photos: [],
  heat: { photoId: -1, label: null, requestId: 0 },
};
const $ = (id) => document.getElementById(id);

async function loadModel() {
  try {
    const response = await fetch("/api/model", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.model = await response.json();
    const kind = state.model.kind === "run" ? "float model of a training run" : "TFLite model";
    const size = state.model.input_size ? `, ${state.model.input_size}\u00d7${state.model.input_size} input` : "";
    const trained = state.model.trained_on ? ` Trained on ${state.model.trained_on}.` : "";
    $("model-line").textContent = `Model: ${kind}${size}; classes: ${state.model.labels.join(", ")}.${trained} dermtool ${state.model.dermtool_version}.`;
    if (state.model.disclaimer) $("disclaimer-text").textContent = state.model.disclaimer;
    // A model with a questionnaire fusion: the short form beside the photo; a change re-runs the last photo.
    renderQuestionnaire($("questions"), state.model.fusion && state.model.fusion.questions, () => {
      if (state.photos.length) analyse(null, { newPhoto: false });
    });
  } catch (error) {
    showError(`Cannot reach the dermtool server (${error.message}). Is "dermtool serve" still running?`);
  }
}

function fused(prediction) {
  return Boolean(prediction && prediction.fusion && prediction.fusion.applied && state.model && state.model.fusion);
}

// The referral rule of a result (the model's metadata or metrics, never a fixed list): the fusion's own
// when answers were combined with the photo.
function referralRule(prediction) {
  const model = state.model || {};
  const rule = fused(prediction) ? model.fusion : model;
  return { labels: rule.referral_labels || [], threshold: rule.referral_threshold, outcomes: rule.outcomes || model.outcomes };
}

function nameOf(label) {
  return (state.model && state.model.names && state.model.names[label]) || label;
}

function nameList(labels) {
  const names = labels.map(nameOf);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : names.join("");
}

// The numbers behind the outcome, from the probabilities the bars show (the rule itself is
// dermtool.prediction.predictor's).
function outcomeNumbers(prediction) {
  const model = state.model || {};
  if (prediction.outcome === "not_a_lesion") return "";
  const rule = referralRule(prediction);
  const labels = rule.labels.filter((label) => label in prediction.probabilities);
  const referralSum = labels.reduce((sum, label) => sum + prediction.probabilities[label], 0);
  const parts = [];
  if (labels.length && typeof rule.threshold === "number") {
    parts.push(`Referral classes together (${nameList(labels)}): ${percent(referralSum)}; the referral threshold is ${percent(rule.threshold)}.`);
  }
  if (prediction.outcome === "refer" && !labels.includes(prediction.label)) {
    parts.push(`The most likely single class is ${nameOf(prediction.label)} (${percent(prediction.probability)}), but the referral classes together reach the threshold.`);
  }
  if (prediction.outcome === "uncertain" && typeof model.uncertainty_threshold === "number") {
    parts.push(`Most likely class ${nameOf(prediction.label)} at ${percent(prediction.probability)}, below the confidence threshold of ${percent(model.uncertainty_threshold)}.`);
  }
  return parts.join(" ");
}

// The lesion check in words (the model's second head, as /api/predict reports it); a model without one
// says so.
function checkLine(prediction) {
  const model = state.model || {};
  if (!prediction.photos || !prediction.lesion_check) {
    return lesionCheckText(prediction.lesion_check, prediction.outcome === "not_a_lesion", model.trained_on);
  }
  const trained = model.trained_on ? ` The model was trained on ${model.trained_on}.` : "";
  const left = prediction.left_out.map((item) => item.image);
  if (!prediction.combined.length) {
    return `Lesion check: no skin lesion found in any of the ${prediction.photos.length} photos, so no class is shown.${trained}`;
  }
  return `Lesion check: ${prediction.combined.length} of ${prediction.photos.length} photos show a skin lesion`
    + `${left.length ? `; left out: ${left.join(", ")} (${prediction.left_out.map((item) => (item.reason === "error" ? "unreadable" : "no skin lesion found")).join(", ")})` : ""}`
    + `. Combined by the model's rule: ${prediction.multi_photo.description}.${trained}`;
}

// The photos of this lesion as thumbnails, each saying whether it was used.
function renderPhotos(prediction) {
  const list = $("lesion-photos");
  list.replaceChildren();
  list.hidden = state.photos.length < 2;
  $("another").hidden = !state.photos.length;
  if (list.hidden) return;
  const used = new Set((prediction && prediction.combined) || []);
  state.photos.forEach((photo, index) => {
    const name = `photo ${index + 1}`;
    const item = document.createElement("li");
    item.dataset.used = String(!prediction || used.has(name));
    const image = document.createElement("img");
    image.src = photo.url;
    image.alt = `Photo ${index + 1} of this lesion`;
    const text = document.createElement("span");
    text.textContent = item.dataset.used === "true" ? `${index + 1}: used` : `${index + 1}: left out`;
    item.append(image, text);
    list.append(item);
  });
}

function renderPrediction(prediction) {
  const rule = referralRule(prediction);
  const guidance = (rule.outcomes && rule.outcomes[prediction.outcome]) || { title: prediction.outcome, message: "" };
  const rejected = prediction.outcome === "not_a_lesion";
  $("outcome").dataset.outcome = prediction.outcome;
  $("outcome-title").textContent = guidance.title;
  $("outcome-message").textContent = guidance.message;
  $("outcome-numbers").textContent = outcomeNumbers(prediction);
  $("outcome-numbers").hidden = !$("outcome-numbers").textContent;

  // A photo turned away: no class, no bar, no answers sentence (nothing the model would have said).
  renderBars($("bars"), rejected ? null : prediction.probabilities, {
    names: (state.model && state.model.names) || {},
    referralLabels: rule.labels,
  });
  $("bars").hidden = rejected;
  $("bars-title").hidden = rejected;
  $("bars-title").textContent = `Calibrated probability per class${fused(prediction) ? " (photo and answers)" : ""}`;
  $("check-line").textContent = checkLine(prediction);
  renderFusion($("fusion"), rejected ? null : prediction.fusion, {
    names: (state.model && state.model.names) || {},
    offered: !rejected && !$("questions").hidden,
    probabilities: prediction.probabilities,
    referralLabels: rule.labels,
    unread: unreadAnswers($("questions")),
  });
  if (rejected) $("fusion").hidden = true;
  renderPhotos(prediction);
  if (prediction.photos && prediction.combined.length > 1) {
    $("bars-title").textContent += `, ${prediction.combined.length} photos combined`;
  }
  $("result").classList.toggle("rejected", rejected);
  $("result").hidden = false;
  document.body.classList.add("has-result");
  state.results += 1;
  document.body.dataset.results = String(state.results);
}

async function postImage(path, files, fields = {}) {
  const form = new FormData();
  for (const file of Array.isArray(files) ? files : [files]) form.append("image", file, file.name || "photo");
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  const response = await fetch(path, { method: "POST", body: form, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : `HTTP ${response.status}`;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return body;
}

function clearPreview() {
  $("preview").hidden = true;
  $("preview").removeAttribute("src");
  $("drop-prompt").hidden = false;
  $("dropzone").classList.remove("has-image");
}

function showPreview(file) {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(file);
  const preview = $("preview");
  // A file the browser cannot display (HEIC on some systems, a broken file) shows no broken-image icon.
  preview.onerror = clearPreview;
  preview.src = state.previewUrl;
  preview.hidden = false;
  $("drop-prompt").hidden = true;
  $("dropzone").classList.add("has-image");
}

function hideHeatMap() {
  $("explain-figure").hidden = true;
  $("explain-status").hidden = true;
  state.heat = { photoId: -1, label: null, requestId: state.heat.requestId + 1 };
  delete document.body.dataset.heatLabel;
}

// The heat map of `label` (the class the result shows) for the current photo; asked again only when the
// photo or the class shown changes.
async function explain(file, photoId, label, photoUrl) {
  if (!state.model || !state.model.explain_available) return;
  if (state.heat.photoId === photoId && state.heat.label === label) return;
  const requestId = state.heat.requestId + 1;
  state.heat = { photoId, label, requestId };
  const status = $("explain-status");
  status.textContent = `Computing the heat map for \u201c${nameOf(label)}\u201d (Grad-CAM)\u2026`;
  status.hidden = false;
  try {
    const result = await postImage("/api/explain", file, { label });
    if (requestId !== state.heat.requestId) return;
    const layer = `data:${result.media_type};base64,${result.heatmap_png_base64}`;
    $("explain-photo").src = photoUrl;
    $("explain-under").src = photoUrl;
    $("explain-layer").src = layer;
    $("explain-caption").textContent = `Coloured areas most raised the model's score for \u201c${result.name}\u201d, `
      + "the class shown at the top of the result: red most, then yellow, green and blue; uncoloured areas had "
      + "little influence. A heat map (Grad-CAM) shows where the model looked; it is not a diagnosis.";
    $("explain-figure").hidden = false;
    status.hidden = true;
    document.body.dataset.heatLabel = result.label;
  } catch (error) {
    if (requestId !== state.heat.requestId) return;
    status.textContent = `Heat map unavailable: ${error.message}`;
  }
}

// The server refused an answer (a check the form did not make): show it beside its field and leave it out.
function answerRefused(error, answers) {
  const match = /^answer (\w+)/.exec(error.message || "");
  if (!match || error.status !== 400 || !(match[1] in answers)) return false;
  const expected = error.message.includes("; ") ? ` Expected ${error.message.split("; ").slice(1).join("; ")}.` : "";
  return showQuestionProblem($("questions"), match[1], `Not understood.${expected} This answer is not used.`);
}

// Classify the lesion's photos with the questionnaire's answers. `file`: a new photo (a new lesion, or with
// `another` one more photo of this lesion); null with `newPhoto: false` when only the answers changed. A new
// lesion clears the answers unless "same lesion or patient" is ticked.
async function analyse(file, { newPhoto = true, another = false } = {}) {
  if (newPhoto && !file) return;
  const requestId = ++state.requestId;
  showError("");
  $("result").hidden = true;
  document.body.classList.remove("has-result");
  if (newPhoto) {
    if (file.type && !file.type.startsWith("image/")) {
      showError(`"${file.name}" is not an image (${file.type}). Choose a photo (JPEG or PNG).`);
      setStatus("");
      return;
    }
    const limit = state.model && state.model.max_upload_mb;
    if (limit && file.size > limit * 1e6) {
      showError(`This photo is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${limit} MB. Choose a smaller photo.`);
      setStatus("");
      return;
    }
    state.photoId += 1;
    hideHeatMap();
    if (!another) {
      for (const photo of state.photos) URL.revokeObjectURL(photo.url);
      state.photos = [];
      if (!keepAnswers($("questions"))) clearAnswers($("questions"));
    }
    state.photos.push({ file, url: URL.createObjectURL(file) });
    showPreview(file);
  }
  const photoId = state.photoId;
  const files = state.photos.map((photo) => photo.file);
  state.file = files[files.length - 1];
  setStatus(files.length > 1 ? `Analysing the ${files.length} photos of this lesion…` : "Analysing the photo…", true);
  const path = files.length > 1 ? "/api/predict_lesion" : "/api/predict";
  try {
    let answers = readQuestionnaire($("questions"));
    let prediction;
    try {
      prediction = await postImage(path, files, answers);
    } catch (error) {
      if (!answerRefused(error, answers)) throw error;
      answers = readQuestionnaire($("questions"));
      delete answers[/^answer (\w+)/.exec(error.message)[1]];
      prediction = await postImage(path, files, answers);
    }
    if (requestId !== state.requestId) return;
    setStatus("");
    state.prediction = prediction;
    renderPrediction(prediction);
    document.body.dataset.state = "done";
    if (prediction.outcome === "not_a_lesion") {
      hideHeatMap();
    } else {  // the heat map of the class shown, on the last photo that was used
      const used = prediction.combined ? prediction.combined.map((name) => Number(name.split(" ")[1]) - 1) : [files.length - 1];
      const index = used[used.length - 1];
      explain(files[index], `${photoId}:${index}`, prediction.label, state.photos[index].url);
    }
  } catch (error) {
    if (requestId !== state.requestId) return;
    setStatus("");
    if (newPhoto && (error.status === 413 || error.status === 415 || error.status === 422)) {
      const photo = state.photos.pop();  // the photo that could not be read is not part of the lesion
      if (photo) URL.revokeObjectURL(photo.url);
      if (!state.photos.length) clearPreview();
      renderPhotos(null);
    }
    showError(error.message);
    document.body.dataset.state = "error";
  }
}

function wireInputs() {
  for (const id of ["file-input", "camera-input", "another-input"]) {
    const input = $(id);
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      analyse(file, { another: id === "another-input" });
      input.value = "";
    });
  }
  for (const radio of document.querySelectorAll("input[name='explain-mode']")) {
    radio.addEventListener("change", () => { if (radio.checked) $("explain-stage").dataset.mode = radio.value; });
  }
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
    analyse(file);
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      $("file-input").click();
    }
  });
  zone.addEventListener("click", () => $("file-input").click());
  // Paste a screenshot or copied image.
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData ? event.clipboardData.items : [])].find((entry) => entry.kind === "file");
    if (item) analyse(item.getAsFile());
  });
}

wireInputs();
loadModel().then(() => {
  document.body.dataset.ready = "true";
});
