// dermtool results: the status and error lines, formatting, the probability bars and the answers' effect,
// shared by `dermtool serve` (static/app.js) and the mobile demo (mobile_demo/build.py copies this file next
// to its app.js). No third-party code.

// The status line (#status; `busy` shows a spinner) and the error box (#error); empty text hides them.
export function setStatus(text, busy = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("busy", busy);
  status.hidden = !text;
}

export function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.hidden = !text;
}

// "12.3%", and "<0.1%" rather than a misleading "0.0%" for a small but non-zero probability.
export function percent(probability) {
  const value = probability * 100;
  if (value > 0 && value < 0.1) return "<0.1%";
  return `${value.toFixed(1)}%`;
}

// One bar per class, most probable first, into the <ol> `list`. Options: `names` (label -> readable
// name), `referralLabels` (the classes that call for referral, tagged and coloured), `highlightTop`
// (mark the first row as the answer). Rows carry data-label / data-probability for tests and tools.
export function renderBars(list, probabilities, { names = {}, referralLabels = [], highlightTop = true } = {}) {
  const nameOf = (label) => names[label] || label;
  const referral = new Set(referralLabels);
  list.replaceChildren();
  Object.entries(probabilities).sort((a, b) => b[1] - a[1]).forEach(([label, probability], index) => {
    const row = document.createElement("li");
    row.className = "bar-row";
    if (referral.has(label)) row.classList.add("referral");
    if (index === 0 && highlightTop) row.classList.add("top");
    row.dataset.label = label;
    row.dataset.probability = String(probability);

    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = nameOf(label);
    const code = document.createElement("span");
    code.className = "bar-code";
    code.textContent = `(${label})`;
    name.append(code);
    if (referral.has(label)) {
      const tag = document.createElement("span");
      tag.className = "bar-tag";
      tag.textContent = "refer";
      tag.title = "A class that calls for a dermatologist's assessment";
      name.append(tag);
    }
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(probability);

    const track = document.createElement("div");
    track.className = "bar-track";
    track.setAttribute("role", "meter");
    track.setAttribute("aria-label", nameOf(label));
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    track.setAttribute("aria-valuenow", (probability * 100).toFixed(1));
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
    track.append(fill);

    row.append(name, value, track);
    list.append(row);
  });
}

// How the questionnaire's answers moved the result (a `fusion` block: dermtool predict's, or the mobile
// demo's fusion.js), into `box`: the sentence ("Bleeding and growth raised the malignant probability from
// 0.20 (image alone) to 0.41.") and the image-alone answer. Without applied answers: "No answers given: the
// image alone decides." where the model asks questions (`offered`), nothing otherwise. data-applied and
// data-summary (the sentence as dermtool gives it) are for tests and tools.
export function renderFusion(box, fusion, { names = {}, offered = false } = {}) {
  const nameOf = (label) => names[label] || label;
  const applied = Boolean(fusion && fusion.applied);
  box.replaceChildren();
  box.dataset.applied = String(applied);
  box.hidden = !(applied || offered);
  const sentence = document.createElement("p");
  sentence.className = "fusion-summary";
  if (!applied) {
    sentence.textContent = "No answers given: the image alone decides.";
    delete box.dataset.summary;
    box.append(sentence);
    return;
  }
  const effect = fusion.malignant_probability;
  box.dataset.summary = effect.summary;
  sentence.textContent = `${effect.summary[0].toUpperCase()}${effect.summary.slice(1)}.`;
  const image = document.createElement("p");
  image.className = "fusion-image muted small";
  const alone = fusion.image_only;
  image.textContent = `Image alone: ${nameOf(alone.label)} (${percent(alone.probability)}). `
    + `Answers used: ${effect.effects.map((item) => item.words).join(", ")}.`;
  box.append(sentence, image);
}
