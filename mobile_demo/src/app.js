// dermtool mobile: the exported .tflite runs on the device with MediaPipe Tasks Vision's ImageClassifier.
// Labels come from the model's own metadata (category names); the referral rule, readable class names and
// the questionnaire fusion come from config.json, written at build time from the model's dermtool.json
// metadata. The fusion (fusion.js) is applied after MediaPipe: the image model runs unchanged.
import { FilesetResolver, ImageClassifier } from "./vendor/vision_bundle.mjs";
import { checkConfig, fuseResult, readAnswers } from "./fusion.js";
import { decodeRgb, resizeForModel, toCanvas } from "./preprocess.js";
// shared with `dermtool serve` (copied by build.py)
import { readQuestionnaire, renderQuestionnaire } from "./questionnaire.js";
import { percent, renderBars, renderFusion, setStatus, showError } from "./results.js";

const $ = (id) => document.getElementById(id);
// image: the last photo's image-model probabilities {label: p} and inference time, kept to re-apply answers
const state = { classifier: null, config: null, previewUrl: null, busy: false, image: null };

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
  $("model-line").textContent = `Model: ${state.config.model_name} (${state.config.mode || "tflite"}, ${spec.image_size || "?"} px input, ${formatBytes(state.config.model_bytes)}); referral threshold ${(state.config.referral.threshold * 100).toFixed(0)}% on ${state.config.referral.classes.join(" + ")}.${questions}`;
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

// `referral`: the image model's rule, or the fusion's own for probabilities fused with answers.
function render(probabilities, referral, fusion) {
  const config = state.config;
  const decision = decide(probabilities, referral);
  const guidance = config.outcomes[decision.outcome];
  $("outcome").dataset.outcome = decision.outcome;
  $("outcome-title").textContent = guidance.title;
  $("outcome-message").textContent = guidance.message;
  const names = referral.classes.map((label) => config.names[label] || label).join(", ");
  $("outcome-numbers").textContent = `Probability of ${names}: ${percent(decision.referralSum)} (referral threshold ${percent(referral.threshold)}).`;

  renderFusion($("fusion"), fusion, { names: config.names, offered: Boolean(config.fusion) });
  $("bars-title").textContent = `Calibrated probability per class${fusion ? " (photo and answers)" : ""}`;
  renderBars($("bars"), probabilities, { names: config.names, referralLabels: referral.classes });
  $("result").hidden = false;
  return decision;
}

// The last photo's result with the current answers: the image model's probabilities, fused with the answers
// by the model's fusion when any is given (the image alone otherwise). Runs again when an answer changes.
function showResult() {
  const config = state.config;
  const { probabilities: image, milliseconds } = state.image;
  let answers = {};
  let fused = null;
  try {
    if (config.fusion) answers = readAnswers(config.fusion, readQuestionnaire($("questions")));
    if (Object.keys(answers).length) fused = fuseResult(config.fusion, image, answers, config.fusion.referral.classes);
  } catch (error) {  // an answer the questionnaire does not take: say which, and show no result
    $("result").hidden = true;
    showError(error.message);
    window.dermtoolLastResult = { error: error.message };
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    return null;
  }
  showError("");
  const probabilities = fused ? fused.probabilities : image;
  const decision = render(probabilities, fused ? config.fusion.referral : config.referral, fused && fused.fusion);
  const top = Object.entries(probabilities).sort((a, b) => b[1] - a[1])[0][0];
  window.dermtoolLastResult = {
    probabilities, image_probabilities: image, top, outcome: decision.outcome, milliseconds,
    fusion: fused ? fused.fusion : null,
  };
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  return decision;
}

async function classifyFile(file) {
  if (!file || !state.classifier || state.busy) return;
  showError("");
  if (file.type && !file.type.startsWith("image/")) {
    showError(`"${file.name}" is not an image. Choose a photo.`);
    return;
  }
  state.busy = true;
  setStatus("Analysing on this device\u2026", true);
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(file);
  const image = $("preview");
  try {
    image.src = state.previewUrl;
    await image.decode();
    image.hidden = false;
    $("photo-prompt").hidden = true;
    const started = performance.now();
    const canvas = await modelInput(file);
    const result = state.classifier.classify(canvas);
    const milliseconds = performance.now() - started;
    const categories = result.classifications[0].categories;
    const probabilities = {};
    for (const category of categories) probabilities[category.categoryName || String(category.index)] = category.score;
    if (!categories.length || !Object.values(probabilities).every(Number.isFinite)) {
      // A corrupt model (weights overwritten with NaN) must never yield an outcome: fail closed.
      state.image = null;
      window.dermtoolLastResult = { error: "non-finite model output" };
      $("result").hidden = true;
      showError("No result: the model gave non-finite outputs (NaN), so its answer cannot be trusted. The model file is probably corrupt; install the app again.");
      setStatus("");
      return;
    }
    state.image = { probabilities, milliseconds };
    const decision = showResult();
    if (decision && window.matchMedia("(max-width: 799px)").matches) $("result").scrollIntoView({ block: "start" });
    document.body.dataset.classified = String(Number(document.body.dataset.classified || 0) + 1);
    setStatus(`Done on this device in ${Math.round(milliseconds)} ms.`);
  } catch (error) {
    console.error(error);
    state.image = null;
    image.hidden = true;
    $("photo-prompt").hidden = false;
    showError(`This photo could not be analysed (${error.message || error}). Try another photo (JPEG or PNG).`);
    setStatus("");
  } finally {
    state.busy = false;
  }
}

function wireInputs() {
  // The questionnaire (a model with a fusion): a changed answer re-applies the fusion to the last photo.
  renderQuestionnaire($("questions"), state.config.fusion && state.config.fusion.questions, () => {
    if (state.image && !state.busy) showResult();
  });
  for (const id of ["camera-input", "file-input"]) {
    const input = $(id);
    input.disabled = false;
    input.addEventListener("change", () => {
      classifyFile(input.files && input.files[0]);
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
