// dermtool serve: the page's logic. Talks only to this server (/api/...); no third-party code.
import { percent, renderBars, renderFusion, setStatus, showError } from "./results.js";
import { readQuestionnaire, renderQuestionnaire } from "./questionnaire.js";

const REFERRAL_LABELS_FALLBACK = ["mel", "bcc", "akiec", "scc"];

const state = { model: null, requestId: 0, photoId: 0, previewUrl: null, file: null, results: 0 };
const $ = (id) => document.getElementById(id);

async function loadModel() {
  try {
    const response = await fetch("/api/model", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.model = await response.json();
    const kind = state.model.kind === "run" ? "float model of a training run" : "TFLite model";
    const size = state.model.input_size ? `, ${state.model.input_size}\u00d7${state.model.input_size} input` : "";
    $("model-line").textContent = `Model: ${kind}${size}; classes: ${state.model.labels.join(", ")}. dermtool ${state.model.dermtool_version}.`;
    if (state.model.disclaimer) $("disclaimer-text").textContent = state.model.disclaimer;
    // A model with a questionnaire fusion: the short form beside the photo; a change re-runs the last photo.
    renderQuestionnaire($("questions"), state.model.fusion && state.model.fusion.questions, () => {
      if (state.file) analyse(state.file, { explain: false });
    });
  } catch (error) {
    showError(`Cannot reach the dermtool server (${error.message}). Is "dermtool serve" still running?`);
  }
}

// The referral rule of a result: the fusion's own when answers were combined with the photo.
function referralRule(prediction) {
  const model = state.model || {};
  const fused = prediction && prediction.fusion && prediction.fusion.applied && model.fusion;
  const rule = fused ? model.fusion : model;
  return { labels: rule.referral_labels || REFERRAL_LABELS_FALLBACK, threshold: rule.referral_threshold };
}

function referralLabels(prediction) {
  return referralRule(prediction).labels;
}

function nameOf(label) {
  return (state.model && state.model.names && state.model.names[label]) || label;
}

// The numbers behind the outcome, in one sentence (the rule itself is dermtool.explain.predict's).
function outcomeNumbers(prediction) {
  const model = state.model || {};
  const rule = referralRule(prediction);
  const labels = rule.labels.filter((label) => label in prediction.probabilities);
  const referralSum = labels.reduce((sum, label) => sum + prediction.probabilities[label], 0);
  const names = labels.map(nameOf).join(", ");
  if (prediction.outcome === "not_a_lesion") {
    return "The probabilities below are shown for completeness only: they are not meaningful for this photo.";
  }
  const parts = [];
  if (labels.length && typeof rule.threshold === "number") {
    parts.push(`Probability of ${names}: ${percent(referralSum)} (referral threshold ${percent(rule.threshold)}).`);
  }
  if (prediction.outcome === "uncertain" && typeof model.uncertainty_threshold === "number") {
    parts.push(`Most likely class ${nameOf(prediction.label)} at ${percent(prediction.probability)}, below the confidence threshold of ${percent(model.uncertainty_threshold)}.`);
  }
  return parts.join(" ");
}

// The not-a-lesion guard, in words: did the photo look like the lesion images the model was trained on?
function photoCheck(prediction) {
  const threshold = state.model && state.model.ood_threshold;
  if (typeof prediction.ood_score !== "number") {
    return "Photo check unavailable for this model: it cannot tell a lesion photo from any other photo.";
  }
  const numbers = typeof threshold === "number"
    ? ` (score ${prediction.ood_score.toFixed(2)}; photos scoring ${threshold.toFixed(2)} or more are rejected)`
    : ` (score ${prediction.ood_score.toFixed(2)})`;
  if (prediction.outcome === "not_a_lesion") {
    return `Photo check failed: this photo does not resemble the dermatoscopic lesion images the model was trained on${numbers}.`;
  }
  return `Photo check passed: the photo resembles the dermatoscopic lesion images the model was trained on${numbers}.`;
}

function renderPrediction(prediction) {
  const guidance = (state.model && state.model.outcomes && state.model.outcomes[prediction.outcome]) || {
    title: prediction.outcome, message: "",
  };
  const outcome = $("outcome");
  outcome.dataset.outcome = prediction.outcome;
  $("outcome-title").textContent = guidance.title;
  $("outcome-message").textContent = guidance.message;
  $("outcome-numbers").textContent = outcomeNumbers(prediction);

  renderBars($("bars"), prediction.probabilities, {
    names: (state.model && state.model.names) || {},
    referralLabels: referralLabels(prediction),
    highlightTop: prediction.outcome !== "not_a_lesion",
  });

  $("ood-line").textContent = photoCheck(prediction);
  const rejected = prediction.outcome === "not_a_lesion";
  const fused = Boolean(prediction.fusion && prediction.fusion.applied);
  renderFusion($("fusion"), rejected ? null : prediction.fusion, {
    names: (state.model && state.model.names) || {},
    offered: !rejected && !$("questions").hidden,
  });
  $("result").classList.toggle("rejected", rejected);
  $("bars-title").textContent = rejected
    ? "What the model would have said (not meaningful for this photo)"
    : `Calibrated probability per class${fused ? " (photo and answers)" : ""}`;
  $("result").hidden = false;
  document.body.classList.add("has-result");
  state.results += 1;
  document.body.dataset.results = String(state.results);
}

async function postImage(path, file, answers = {}) {
  const form = new FormData();
  form.append("image", file, file.name || "photo");
  for (const [name, value] of Object.entries(answers)) form.append(name, value);
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

async function explain(file, photoId) {
  const figure = $("explain-figure");
  const status = $("explain-status");
  figure.hidden = true;
  if (!state.model || !state.model.explain_available) {
    status.hidden = true;
    return;
  }
  status.textContent = "Computing the heat map (Grad-CAM)\u2026";
  status.hidden = false;
  try {
    const result = await postImage("/api/explain", file);
    if (photoId !== state.photoId) return;
    $("explain-image").src = `data:${result.media_type};base64,${result.overlay_png_base64}`;
    $("explain-caption").textContent = `Regions that most influenced \u201c${result.name}\u201d (Grad-CAM). A heat map shows where the model looked; it is not a diagnosis.`;
    figure.hidden = false;
    status.hidden = true;
  } catch (error) {
    if (photoId !== state.photoId) return;
    status.textContent = `Heat map unavailable: ${error.message}`;
  }
}

// Classify `file` with the questionnaire's answers. `explain: false` (the answers changed, the photo did
// not) leaves the heat map as it is.
async function analyse(file, { explain: withHeatMap = true } = {}) {
  if (!file) return;
  const requestId = ++state.requestId;
  showError("");
  $("result").hidden = true;
  if (withHeatMap) {
    state.photoId += 1;
    state.file = null;
    $("explain-figure").hidden = true;
    $("explain-status").hidden = true;
  }
  const photoId = state.photoId;
  document.body.classList.remove("has-result");
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
  if (withHeatMap) showPreview(file);
  state.file = file;
  setStatus("Analysing the photo\u2026", true);
  try {
    const prediction = await postImage("/api/predict", file, readQuestionnaire($("questions")));
    if (requestId !== state.requestId) return;
    setStatus("");
    renderPrediction(prediction);
    document.body.dataset.state = "done";
    if (withHeatMap && prediction.outcome !== "not_a_lesion") explain(file, photoId);
  } catch (error) {
    if (requestId !== state.requestId) return;
    setStatus("");
    if (error.status === 413 || error.status === 415 || error.status === 422) {
      clearPreview();
      state.file = null;
    }
    showError(error.message);
    document.body.dataset.state = "error";
  }
}

function wireInputs() {
  for (const id of ["file-input", "camera-input"]) {
    const input = $(id);
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      analyse(file);
      input.value = "";
    });
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
