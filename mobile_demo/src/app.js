// dermtool mobile: the exported .tflite runs on the device with MediaPipe Tasks Vision's ImageClassifier.
// Labels come from the model's own metadata (category names); the referral rule, readable class names, the
// lesion check's threshold, the multi-photo rule and the questionnaire fusion come from config.json, written
// at build time from the model's dermtool.json metadata. The lesion check is the model's second
// classification head (headName "lesion_check"): a photo with P(not_a_lesion) >= its threshold gets "not a
// lesion" and no class at all. Several photos of one lesion ("add another photo of this lesion") are
// combined by combine.js (the rejected ones left out and listed); the fusion (fusion.js) is then applied to
// the lesion's probabilities. A new photo starts a new patient (the answers are cleared) unless "same lesion
// or patient" is ticked.
import { FilesetResolver, ImageClassifier } from "./vendor/vision_bundle.mjs";
import { combinePhotos } from "./combine.js";
import { checkConfig, fuseResult, readAnswers } from "./fusion.js";
import { decodeRgb, resizeForModel, toCanvas } from "./preprocess.js";
// shared with `dermtool serve` (copied by build.py)
import {
  clearAnswers, keepAnswers, readQuestionnaire, renderQuestionnaire, showQuestionProblem, unreadAnswers,
} from "./questionnaire.js";
import { lesionCheckText, percent, renderBars, renderFusion, setStatus, showError } from "./results.js";

const $ = (id) => document.getElementById(id);
// photos: this lesion's photos, each {url, probabilities (the image model's), notALesion (P or null),
// rejected, milliseconds}; the result is recomputed from them when an answer changes
const state = { classifier: null, config: null, busy: false, photos: [] };

function formatBytes(bytes) {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

// The service worker caches the app, the model and the WebAssembly as they are first fetched. Wait until it
// controls this page before loading MediaPipe, so that the first load already fills the offline cache.
async function startServiceWorker() {
  if (!("serviceWorker" in navigator)) return "unsupported";
  try {
    await navigator.serviceWorker.register("sw.js", { scope: "./" });
    if (!navigator.serviceWorker.controller) setStatus("Saving the app and the model on this device for offline use\u2026", true);
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 60000);
        navigator.serviceWorker.addEventListener("controllerchange", () => { clearTimeout(timer); resolve(); }, { once: true });
      });
    }
    return navigator.serviceWorker.controller ? "active" : "pending";
  } catch (error) {
    console.warn("service worker unavailable", error);
    return "failed";
  }
}

async function loadClassifier() {
  const response = await fetch("config.json");
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  state.config = checkConfig(await response.json());  // every threshold finite and in [0, 1], or one line
  const wasmBase = new URL("wasm", window.location.href).href;
  const fileset = await FilesetResolver.forVisionTasks(wasmBase);
  state.classifier = await ImageClassifier.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: state.config.model, delegate: "CPU" },
    runningMode: "IMAGE",
    maxResults: -1,
  });
  const spec = state.config.input_spec || {};
  const questions = state.config.fusion ? " Questionnaire: answers are combined with the photo on this device." : "";
  const trained = state.config.trained_on ? ` Trained on ${state.config.trained_on}.` : "";
  $("model-line").textContent = `Model: ${state.config.model_name} (${state.config.mode || "tflite"}, ${spec.image_size || "?"} px input, ${formatBytes(state.config.model_bytes)}); referral threshold ${(state.config.referral.threshold * 100).toFixed(0)}% on ${state.config.referral.classes.join(" + ")}.${trained}${questions}`;
}

// The model's input, prepared exactly as dermtool prepares it (preprocess.js): decode with the EXIF
// orientation applied, resize policy + Pillow-identical bilinear resize to the input size.
async function modelInput(file) {
  const spec = state.config.input_spec;
  const decoded = await decodeRgb(file);
  const pixels = resizeForModel(decoded.pixels, decoded.width, decoded.height, spec.image_size, spec.resize_policy);
  return toCanvas(pixels, spec.image_size);
}

function decide(probabilities, referral) {
  const uncertainty = state.config.uncertainty_threshold;
  const referralSum = referral.classes.reduce((sum, label) => sum + (probabilities[label] || 0), 0);
  const top = Math.max(...Object.values(probabilities));
  if (referralSum >= referral.threshold) return { outcome: "refer", referralSum, top };
  if (top < uncertainty) return { outcome: "uncertain", referralSum, top };
  return { outcome: "benign", referralSum, top };
}

function nameOf(label) {
  return state.config.names[label] || label;
}

function nameList(labels) {
  const names = labels.map(nameOf);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : names.join("");
}

// The photos of this lesion as thumbnails, each saying whether it was used.
function renderPhotos() {
  const list = $("lesion-photos");
  list.replaceChildren();
  list.hidden = state.photos.length < 2;
  state.photos.forEach((photo, index) => {
    const item = document.createElement("li");
    item.dataset.used = String(!photo.rejected);
    const image = document.createElement("img");
    image.src = photo.url;
    image.alt = `Photo ${index + 1} of this lesion`;
    const text = document.createElement("span");
    text.textContent = photo.rejected ? `${index + 1}: left out, no lesion found` : `${index + 1}: used`;
    item.append(image, text);
    list.append(item);
  });
  $("another").hidden = !state.photos.length;
}

// The lesion-check line: what the check said (for several photos, which were left out).
function checkLine(kept) {
  const config = state.config;
  if (!config.lesion_check) return lesionCheckText(null, false, config.trained_on);
  if (state.photos.length === 1) {
    const photo = state.photos[0];
    return lesionCheckText({ not_a_lesion: photo.notALesion, threshold: config.lesion_check.threshold }, photo.rejected, config.trained_on);
  }
  const left = state.photos.map((photo, index) => (photo.rejected ? index + 1 : null)).filter((index) => index !== null);
  const trained = config.trained_on ? ` The model was trained on ${config.trained_on}.` : "";
  if (!kept.length) return `Lesion check: no skin lesion found in any of the ${state.photos.length} photos, so no class is shown.${trained}`;
  return `Lesion check: ${kept.length} of ${state.photos.length} photos show a skin lesion`
    + `${left.length ? `; left out: photo ${left.join(", ")} (no skin lesion found)` : ""}.${trained}`;
}

// `referral`: the image model's rule, or the fusion's own for probabilities fused with answers.
function render(probabilities, referral, fusion, outcomes, combined) {
  const decision = decide(probabilities, referral);
  const guidance = outcomes[decision.outcome];
  $("outcome").dataset.outcome = decision.outcome;
  $("outcome-title").textContent = guidance.title;
  $("outcome-message").textContent = guidance.message;
  const top = Object.entries(probabilities).sort((a, b) => b[1] - a[1])[0];
  let numbers = `Referral classes together (${nameList(referral.classes)}): ${percent(decision.referralSum)}; the referral threshold is ${percent(referral.threshold)}.`;
  if (decision.outcome === "refer" && !referral.classes.includes(top[0])) {
    numbers += ` The most likely single class is ${nameOf(top[0])} (${percent(top[1])}), but the referral classes together reach the threshold.`;
  }
  $("outcome-numbers").textContent = numbers;
  $("outcome-numbers").hidden = false;

  renderFusion($("fusion"), fusion, {
    names: state.config.names, offered: Boolean(state.config.fusion), probabilities, referralLabels: referral.classes,
    unread: unreadAnswers($("questions")),
  });
  $("bars-title").hidden = false;
  $("bars").hidden = false;
  $("bars-title").textContent = `Calibrated probability per class${fusion ? " (photo and answers)" : ""}`
    + (combined > 1 ? `, ${combined} photos combined` : "");
  renderBars($("bars"), probabilities, { names: state.config.names, referralLabels: referral.classes });
  $("result").hidden = false;
  return decision;
}

// No skin lesion in any photo of this lesion: "not a lesion", and no class, bar or answers' sentence.
function renderRejected() {
  const guidance = state.config.outcomes.not_a_lesion;
  $("outcome").dataset.outcome = "not_a_lesion";
  $("outcome-title").textContent = guidance.title;
  $("outcome-message").textContent = guidance.message;
  $("outcome-numbers").textContent = "";
  $("outcome-numbers").hidden = true;
  $("fusion").replaceChildren();
  $("fusion").hidden = true;
  renderBars($("bars"), null);
  $("bars").hidden = true;
  $("bars-title").hidden = true;
  $("result").hidden = false;
}

// An answer fusion.js refuses (one the form did not catch): said beside its field, and left out.
function withoutRefused(answers) {
  const config = state.config;
  const kept = { ...answers };
  for (;;) {
    try {
      return readAnswers(config.fusion, kept);
    } catch (error) {
      const match = /^answer (\w+)/.exec(error.message || "");
      if (!match || !(match[1] in kept)) throw error;
      showQuestionProblem($("questions"), match[1], `Not understood. This answer is not used.`);
      delete kept[match[1]];
    }
  }
}

// This lesion's result with the current answers: its photos' image-model probabilities (the rejected ones
// left out) combined by the model's multi-photo rule, fused with the answers by the model's fusion when any
// is given (the image alone otherwise). Runs again when an answer changes or a photo is added.
function showResult() {
  const config = state.config;
  const kept = state.photos.filter((photo) => !photo.rejected);
  const milliseconds = state.photos[state.photos.length - 1].milliseconds;
  const photos = state.photos.map((photo) => ({ rejected: photo.rejected, not_a_lesion: photo.notALesion }));
  renderPhotos();
  $("check-line").textContent = checkLine(kept);
  $("photos-line").hidden = state.photos.length < 2;
  $("photos-line").textContent = state.photos.length < 2 ? "" : `${kept.length} of ${state.photos.length} photos of this lesion combined (${config.multi_photo ? config.multi_photo.rule.replace("_", " ") : "mean"}).`;
  const lesionCheck = config.lesion_check && state.photos.length === 1
    ? { not_a_lesion: state.photos[0].notALesion, threshold: config.lesion_check.threshold } : null;
  if (!kept.length) {
    renderRejected();
    window.dermtoolLastResult = { outcome: "not_a_lesion", probabilities: null, image_probabilities: null, top: null,
      milliseconds, fusion: null, lesion_check: lesionCheck, photos };
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    return { outcome: "not_a_lesion" };
  }
  const image = kept.length === 1 ? kept[0].probabilities : combinePhotos(kept.map((photo) => photo.probabilities), config.multi_photo);
  let answers = {};
  let fused = null;
  try {
    if (config.fusion) answers = withoutRefused(readQuestionnaire($("questions")));
    if (Object.keys(answers).length) fused = fuseResult(config.fusion, image, answers, config.fusion.referral.classes);
  } catch (error) {  // not an answer's fault: say so, and show no result
    $("result").hidden = true;
    showError(error.message);
    window.dermtoolLastResult = { error: error.message };
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    return null;
  }
  showError("");
  const probabilities = fused ? fused.probabilities : image;
  const decision = render(probabilities, fused ? config.fusion.referral : config.referral, fused && fused.fusion,
    fused ? config.fusion.outcomes || config.outcomes : config.outcomes, kept.length);
  const top = Object.entries(probabilities).sort((a, b) => b[1] - a[1])[0][0];
  window.dermtoolLastResult = {
    probabilities, image_probabilities: image, top, outcome: decision.outcome, milliseconds,
    fusion: fused ? fused.fusion : null, lesion_check: lesionCheck, photos,
  };
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  return decision;
}

// MediaPipe's answer -> {probabilities, notALesion}: the class head (the first, headIndex 0) and the lesion
// check's head (headName "lesion_check", when the model has one).
function readHeads(result) {
  const check = state.config.lesion_check;
  const heads = result.classifications || [];
  const main = heads.find((head) => !check || head.headName !== check.head_name) || heads[0];
  const probabilities = {};
  for (const category of (main ? main.categories : [])) probabilities[category.categoryName || String(category.index)] = category.score;
  let notALesion = null;
  if (check) {
    const head = heads.find((item) => item.headName === check.head_name);
    const category = head && head.categories.find((item) => item.categoryName === "not_a_lesion");
    notALesion = category ? category.score : NaN;  // the model lost its check: fail closed below
  }
  return { probabilities, notALesion };
}

async function classifyFile(file, { another = false } = {}) {
  if (!file || !state.classifier || state.busy) return;
  showError("");
  if (file.type && !file.type.startsWith("image/")) {
    showError(`"${file.name}" is not an image. Choose a photo.`);
    return;
  }
  state.busy = true;
  setStatus("Analysing on this device\u2026", true);
  const url = URL.createObjectURL(file);
  const image = $("preview");
  try {
    const started = performance.now();
    const canvas = await modelInput(file);
    const result = state.classifier.classify(canvas);
    const milliseconds = performance.now() - started;
    const { probabilities, notALesion } = readHeads(result);
    const values = Object.values(probabilities);
    if (!values.length || !values.every(Number.isFinite) || (state.config.lesion_check && !Number.isFinite(notALesion))) {
      // A corrupt model (weights overwritten with NaN, a lost lesion-check head) must never yield an outcome.
      URL.revokeObjectURL(url);
      window.dermtoolLastResult = { error: "non-finite model output" };
      $("result").hidden = true;
      showError("No result: the model gave non-finite outputs (NaN) or lost its lesion check, so its answer cannot be trusted. The model file is probably corrupt; install the app again.");
      setStatus("");
      return;
    }
    if (!another) {  // a new lesion: its photos start again, and a new patient's answers start empty
      for (const photo of state.photos) URL.revokeObjectURL(photo.url);
      state.photos = [];
      if (!keepAnswers($("questions"))) clearAnswers($("questions"));
    }
    const rejected = state.config.lesion_check ? notALesion >= state.config.lesion_check.threshold : false;
    state.photos.push({ url, probabilities, notALesion, rejected, milliseconds });
    image.src = url;
    image.hidden = false;
    $("photo-prompt").hidden = true;
    const decision = showResult();
    if (decision && window.matchMedia("(max-width: 799px)").matches) $("result").scrollIntoView({ block: "start" });
    document.body.dataset.classified = String(Number(document.body.dataset.classified || 0) + 1);
    setStatus(`Done on this device in ${Math.round(milliseconds)} ms.`);
  } catch (error) {
    console.error(error);
    URL.revokeObjectURL(url);
    if (!state.photos.length) {
      image.hidden = true;
      image.removeAttribute("src");
      $("photo-prompt").hidden = false;
    }
    showError(`This photo could not be analysed (${error.message || error}). Try another photo (JPEG or PNG).`);
    setStatus("");
  } finally {
    state.busy = false;
  }
}

function wireInputs() {
  // The questionnaire (a model with a fusion): a changed answer re-applies the fusion to this lesion.
  renderQuestionnaire($("questions"), state.config.fusion && state.config.fusion.questions, () => {
    if (state.photos.length && !state.busy) showResult();
  });
  for (const id of ["camera-input", "file-input", "another-input"]) {
    const input = $(id);
    input.disabled = false;
    input.addEventListener("change", () => {
      classifyFile(input.files && input.files[0], { another: id === "another-input" });
      input.value = "";
    });
  }
}

function showOfflineState(worker) {
  const text = {
    active: "Saved on this device: works without a network.",
    pending: "Offline use starts from the next visit.",
    unsupported: "This browser cannot keep the app offline.",
    failed: "Offline cache unavailable in this browser session.",
  }[worker];
  $("offline-state").textContent = text || "";
  document.body.dataset.offline = worker;
}

async function main() {
  const worker = await startServiceWorker();
  showOfflineState(worker);
  setStatus("Loading the model\u2026", true);
  try {
    await loadClassifier();
  } catch (error) {
    console.error(error);
    setStatus("");
    showError(`The model could not be loaded (${error.message || error}). Open the app once with a network connection, then it works offline.`);
    document.body.dataset.ready = "error";
    return;
  }
  wireInputs();
  setStatus(navigator.onLine ? "Ready. Take or choose a photo." : "Ready, offline. Take or choose a photo.");
  document.body.dataset.ready = "true";
}

main();
