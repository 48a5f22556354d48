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
  if (!probabilities) return;  // a photo the lesion check turned away: no class is shown
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

// The classes the answers moved, read from the probabilities the bars show: [{label, before, after}] of every
// class that moved by at least `minimum` (1 point), the largest move first.
export function classMoves(imageProbabilities, probabilities, minimum = 0.01) {
  return Object.keys(probabilities)
    .map((label) => ({ label, before: imageProbabilities[label] || 0, after: probabilities[label] }))
    .filter((item) => Math.abs(item.after - item.before) >= minimum)
    .sort((a, b) => Math.abs(b.after - b.before) - Math.abs(a.after - a.before));
}

function sum(probabilities, labels) {
  return labels.reduce((total, label) => total + (probabilities[label] || 0), 0);
}

// The sentence on the answers, from the same numbers as the bars and the outcome: "Compared with the photo
// alone, the answers raised melanoma from 24.0% to 40.1% and lowered basal cell carcinoma from 35.2% to
// 3.0%. Referral classes together: 61.0% before the answers, 42.0% with them."
export function answersSentence(imageProbabilities, probabilities, { names = {}, referralLabels = [], most = 3 } = {}) {
  const nameOf = (label) => names[label] || label;
  const moves = classMoves(imageProbabilities, probabilities).slice(0, most);
  const parts = moves.map((item) => `${item.after > item.before ? "raised" : "lowered"} ${nameOf(item.label)} from `
    + `${percent(item.before)} to ${percent(item.after)}`);
  const first = parts.length
    ? `Compared with the photo alone, the answers ${parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}` : parts[0]}.`
    : "The answers moved no class by 1 point or more.";
  if (!referralLabels.length) return first;
  return `${first} Referral classes together: ${percent(sum(imageProbabilities, referralLabels))} before the answers, `
    + `${percent(sum(probabilities, referralLabels))} with them.`;
}

// How the questionnaire's answers moved the result (a `fusion` block: dermtool predict's, or the mobile
// demo's fusion.js), into `box`: the sentence naming the classes that moved (answersSentence, from the
// `probabilities` the bars show and the image-alone ones) and the image-alone answer. Without applied
// answers: "No answers given: the image alone decides." where the model asks questions (`offered`), nothing
// otherwise. `unread`: questions whose answer was not understood (listed as not used). data-applied and
// data-summary (the malignant-probability sentence as dermtool gives it) are for tests and tools.
export function renderFusion(box, fusion, { names = {}, offered = false, probabilities = null, referralLabels = [], unread = [] } = {}) {
  const nameOf = (label) => names[label] || label;
  const applied = Boolean(fusion && fusion.applied);
  box.replaceChildren();
  box.dataset.applied = String(applied);
  box.hidden = !(applied || offered);
  const sentence = document.createElement("p");
  sentence.className = "fusion-summary";
  const notUsed = document.createElement("p");
  notUsed.className = "fusion-unread small";
  notUsed.textContent = unread.length ? `Not used (not understood): ${unread.join(", ")}.` : "";
  notUsed.hidden = !unread.length;
  if (!applied) {
    sentence.textContent = "No answers given: the image alone decides.";
    delete box.dataset.summary;
    box.append(sentence, notUsed);
    return;
  }
  const effect = fusion.malignant_probability;
  box.dataset.summary = effect.summary;
  const alone = fusion.image_only;
  sentence.textContent = answersSentence(alone.probabilities, probabilities || alone.probabilities, { names, referralLabels });
  const image = document.createElement("p");
  image.className = "fusion-image muted small";
  image.textContent = `Photo alone: ${nameOf(alone.label)} (${percent(alone.probability)}). `
    + `Answers used: ${effect.effects.map((item) => item.words).join(", ")}.`;
  box.append(sentence, image, notUsed);
}

// The lesion check's line, in plain words. `check`: a result's {not_a_lesion, threshold} (null or undefined:
// the model has no lesion check); `trainedOn`: what the model was trained on, in words.
export function lesionCheckText(check, rejected, trainedOn) {
  const trained = trainedOn ? ` The model was trained on ${trainedOn}.` : "";
  if (!check || typeof check.not_a_lesion !== "number") {
    return "This model has no lesion check: it cannot tell a photo of a skin lesion from a photo of anything "
      + `else, so make sure the photo shows the lesion.${trained}`;
  }
  const numbers = `probability of no lesion ${percent(check.not_a_lesion)}; photos at ${percent(check.threshold)} or more are turned away`;
  if (rejected) return `Lesion check: no skin lesion found in this photo (${numbers}), so no class is shown.${trained}`;
  return `Lesion check passed: the photo shows a skin lesion (${numbers}).${trained}`;
}
