// dermtool mobile: the exported .tflite runs on the device with MediaPipe Tasks Vision's ImageClassifier.
// Labels come from the model's own metadata (category names); the referral rule and readable class names
// come from config.json, written at build time from the model's dermtool.json metadata.
import { FilesetResolver, ImageClassifier } from "./vendor/vision_bundle.mjs";
import { decodeRgb, resizeForModel, toCanvas } from "./preprocess.js";
import { percent, renderBars, setStatus, showError } from "./results.js"; // shared with `dermtool serve` (copied by build.py)

const $ = (id) => document.getElementById(id);
const state = { classifier: null, config: null, previewUrl: null, busy: false };

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
  state.config = await response.json();
  const wasmBase = new URL("wasm", window.location.href).href;
  const fileset = await FilesetResolver.forVisionTasks(wasmBase);
  state.classifier = await ImageClassifier.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: state.config.model, delegate: "CPU" },
    runningMode: "IMAGE",
    maxResults: -1,
  });
  const spec = state.config.input_spec || {};
  $("model-line").textContent = `Model: ${state.config.model_name} (${state.config.mode || "tflite"}, ${spec.image_size || "?"} px input, ${formatBytes(state.config.model_bytes)}); referral threshold ${(state.config.referral.threshold * 100).toFixed(0)}% on ${state.config.referral.classes.join(" + ")}.`;
}

// The model's input, prepared exactly as dermtool prepares it (preprocess.js): decode with the EXIF
// orientation applied, resize policy + Pillow-identical bilinear resize to the input size.
async function modelInput(file) {
  const spec = state.config.input_spec;
  const decoded = await decodeRgb(file);
  const pixels = resizeForModel(decoded.pixels, decoded.width, decoded.height, spec.image_size, spec.resize_policy);
  return toCanvas(pixels, spec.image_size);
}

function decide(probabilities) {
  const { referral, uncertainty_threshold: uncertainty } = state.config;
  const referralSum = referral.classes.reduce((sum, label) => sum + (probabilities[label] || 0), 0);
  const top = Math.max(...Object.values(probabilities));
  if (referralSum >= referral.threshold) return { outcome: "refer", referralSum, top };
  if (top < uncertainty) return { outcome: "uncertain", referralSum, top };
  return { outcome: "benign", referralSum, top };
}

function render(probabilities) {
  const config = state.config;
  const decision = decide(probabilities);
  const guidance = config.outcomes[decision.outcome];
  $("outcome").dataset.outcome = decision.outcome;
  $("outcome-title").textContent = guidance.title;
  $("outcome-message").textContent = guidance.message;
  const names = config.referral.classes.map((label) => config.names[label] || label).join(", ");
  $("outcome-numbers").textContent = `Probability of ${names}: ${percent(decision.referralSum)} (referral threshold ${percent(config.referral.threshold)}).`;

  renderBars($("bars"), probabilities, { names: config.names, referralLabels: config.referral.classes });
  $("result").hidden = false;
  if (window.matchMedia("(max-width: 799px)").matches) $("result").scrollIntoView({ block: "start" });
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
      window.dermtoolLastResult = { error: "non-finite model output" };
      $("result").hidden = true;
      showError("No result: the model gave non-finite outputs (NaN), so its answer cannot be trusted. The model file is probably corrupt; install the app again.");
      setStatus("");
      return;
    }
    const decision = render(probabilities);
    const top = Object.entries(probabilities).sort((a, b) => b[1] - a[1])[0][0];
    window.dermtoolLastResult = { probabilities, top, outcome: decision.outcome, milliseconds };
    document.body.dataset.classified = String(Number(document.body.dataset.classified || 0) + 1);
    setStatus(`Done on this device in ${Math.round(milliseconds)} ms.`);
  } catch (error) {
    console.error(error);
    image.hidden = true;
    $("photo-prompt").hidden = false;
    showError(`This photo could not be analysed (${error.message || error}). Try another photo (JPEG or PNG).`);
    setStatus("");
  } finally {
    state.busy = false;
  }
}

function wireInputs() {
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
