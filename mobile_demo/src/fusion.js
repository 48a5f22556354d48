// dermtool's questionnaire fusion, applied on the device after MediaPipe has run the unchanged image model.
// A port of dermtool.fusion (model.py, questionnaire.py, explain.py) that must give the same numbers and the
// same sentence: tests/fusion/test_fusion_js.py runs it with node on recorded inputs against the Python.
//
//   z[c] = image_scale * log(max(p[c], probability_floor)) + sum over answered questions q of weights[q][level][c]
//   fused = softmax(z)
//
// `fusion` is the JSON of the model's dermtool.json "fusion" (config.json carries it): labels, image_scale,
// probability_floor, questions (name, kind, levels; bands, minimum, maximum for a number), weights. A question
// left unknown adds nothing, so with no answers the fused argmax is the image model's. No DOM here: node runs it.

export const UNKNOWN_SPELLINGS = new Set(["", "unknown", "unk", "?", "na", "n/a", "none", "null", "nan", "skip", "-"]);
const YES_SPELLINGS = new Set(["yes", "y", "true", "t", "1"]);
const NO_SPELLINGS = new Set(["no", "n", "false", "f", "0"]);
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

// A value as Python's repr shows it in an error message ('maybe', 150, True).
function shown(value) {
  if (typeof value === "string") return `'${value}'`;
  if (typeof value === "boolean") return value ? "True" : "False";
  return String(value);
}

// "age: a number of years (0-120)", "bleed: yes or no", "site: head_neck, trunk, ..."
export function describeQuestion(question) {
  if (question.kind === "number") return `${question.name}: a number of years (${question.minimum}-${question.maximum})`;
  const choices = question.levels;
  return `${question.name}: ${choices.length === 2 ? choices.join(" or ") : choices.join(", ")}`;
}

function refuse(question, value) {
  return new Error(`answer ${question.name}=${shown(value)} is not understood; ${describeQuestion(question)}, or unknown`);
}

// The level of one answer (null for unknown), read as dermtool.fusion.questionnaire.Question.read reads it:
// a number of years into its band (the JSON's `bands`), yes/no spellings, a choice by its level name.
export function readAnswer(question, value) {
  if (value === null || value === undefined || (typeof value === "number" && Number.isNaN(value))) return null;
  const text = String(value).trim().toLowerCase();
  if (UNKNOWN_SPELLINGS.has(text)) return null;
  if (question.kind === "number") {
    if (question.levels.includes(text)) return text;
    const number = typeof value === "number" ? value : (DECIMAL.test(text) ? Number(text) : NaN);
    if (typeof value === "boolean" || !Number.isFinite(number) || number < question.minimum || number > question.maximum) {
      throw new Error(`answer ${question.name}='${text}' is not understood; ${describeQuestion(question)}, or unknown`);
    }
    return question.levels[question.bands.filter((edge) => number >= edge).length];
  }
  if (question.kind === "yes_no") {
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (YES_SPELLINGS.has(text)) return "yes";
    if (NO_SPELLINGS.has(text)) return "no";
    throw refuse(question, value);
  }
  if (question.levels.includes(text)) return text;  // a choice by its level name (the form's values)
  throw refuse(question, value);
}

// {question: level} from {question: answer}, in the order given; unknown answers left out, an unknown
// question or an answer a question does not take refused (an Error with Python's one-line message).
export function readAnswers(fusion, raw) {
  const byName = new Map(fusion.questions.map((question) => [question.name, question]));
  const answers = {};
  for (const [name, value] of Object.entries(raw || {})) {
    const question = byName.get(String(name).trim().toLowerCase());
    if (!question) {
      throw new Error(`unknown question '${name}'; the questions are ${fusion.questions.map((item) => item.name).join(", ")}`);
    }
    const level = readAnswer(question, value);
    if (level !== null) answers[question.name] = level;
  }
  return answers;
}

// Fused probabilities (an array in fusion.labels order) for the image model's `probabilities` (same order).
export function applyFusion(fusion, probabilities, answers) {
  const classes = fusion.labels.length;
  if (probabilities.length !== classes) {
    throw new Error(`fusion: ${probabilities.length} probabilities per image for ${classes} labels`);
  }
  for (const name of Object.keys(answers || {})) {
    if (!fusion.questions.some((question) => question.name === name)) throw new Error(`unknown question '${name}'`);
  }
  const added = new Array(classes).fill(0);
  for (const question of fusion.questions) {  // the answers' weights, summed in question order
    const level = (answers || {})[question.name];
    if (level === undefined || level === null) continue;
    if (!question.levels.includes(level)) throw new Error(`answer ${question.name}='${level}' is not a level of that question`);
    const weights = (fusion.weights[question.name] || {})[level];
    if (weights) for (let c = 0; c < classes; c++) added[c] += weights[c];
  }
  const logits = probabilities.map((p, c) => fusion.image_scale * Math.log(Math.max(p, fusion.probability_floor)) + added[c]);
  const top = Math.max(...logits);
  const exponentials = logits.map((value) => Math.exp(value - top));
  const total = exponentials.reduce((sum, value) => sum + value, 0);
  return exponentials.map((value) => value / total);
}

// {label: p} (MediaPipe's categories) as an array in fusion.labels order, and back.
export function toArray(fusion, probabilities) {
  return fusion.labels.map((label) => {
    if (!(label in probabilities)) throw new Error(`fusion: the model gave no probability for ${label}`);
    return probabilities[label];
  });
}

export function toMap(fusion, values) {
  return Object.fromEntries(fusion.labels.map((label, index) => [label, values[index]]));
}

// Python's f"{value:.{digits}f}": the exact value rounded half to even (JavaScript's toFixed rounds half up).
export function formatFixed(value, digits) {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  const sign = value < 0 || Object.is(value, -0) ? "-" : "";
  const magnitude = Math.abs(value);
  let text = magnitude.toFixed(digits);
  const exact = magnitude.toFixed(100);  // a tie at `digits` is a short exact decimal: 100 digits show it
  const point = exact.indexOf(".");
  if (/^50*$/.test(exact.slice(point + 1 + digits))) {
    const kept = exact.slice(0, digits > 0 ? point + 1 + digits : point);
    if (Number(kept[kept.length - 1]) % 2 === 0) text = kept;
  }
  return sign + text;
}

// Python's round(value, digits) for a float.
export function roundTo(value, digits) {
  return Number(formatFixed(value, digits));
}

const YES_WORDS = { itch: "itching", grew: "growth", hurt: "pain", changed: "change", bleed: "bleeding", elevation: "a raised lesion" };
const NO_WORDS = { itch: "no itching", grew: "no growth", hurt: "no pain", changed: "no change", bleed: "no bleeding", elevation: "a flat lesion" };

// bleed=yes -> "bleeding", age=60-74 -> "age 60-74", site=trunk -> "the site (trunk)".
export function answerWords(name, level) {
  if (level === "yes" && name in YES_WORDS) return YES_WORDS[name];
  if (level === "no" && name in NO_WORDS) return NO_WORDS[name];
  if (name === "age") return `age ${level}`;
  if (name === "site") return `the site (${level.replaceAll("_", "/")})`;
  return `${name} ${level}`;
}

function malignantOf(values, labels, malignant) {
  let total = 0;
  for (const name of malignant) {
    const index = labels.indexOf(name);
    if (index >= 0) total += values[index];
  }
  return total;
}

// One sentence naming at most two answers that moved the malignant probability the way it went.
export function summarySentence(imageOnly, fused, effects) {
  if (Math.abs(fused - imageOnly) < 0.005) {
    return `the answers left the malignant probability at ${formatFixed(fused, 2)} (image alone ${formatFixed(imageOnly, 2)})`;
  }
  const direction = fused > imageOnly ? 1 : -1;
  const movers = effects.filter((item) => item.change * direction > 0.005).slice(0, 2).map((item) => item.words);
  const verb = direction > 0 ? "raised" : "lowered";
  const who = movers.length ? movers.join(" and ") : "the answers together";
  return `${who} ${verb} the malignant probability from ${formatFixed(imageOnly, 2)} (image alone) to ${formatFixed(fused, 2)}`;
}

// {image_only, fused, effects: [{question, answer, words, change}], summary} for one image, as
// dermtool.fusion.explain.answer_effects gives it: the malignant probability (summed over `malignant`) from
// the image alone and fused, each answer's leave-one-out effect (largest first) and one sentence.
export function answerEffects(fusion, probabilities, answers, malignant) {
  const labels = fusion.labels;
  const imageOnly = malignantOf(probabilities, labels, malignant);
  const names = Object.keys(answers || {});
  if (!names.length) {
    return { image_only: roundTo(imageOnly, 6), fused: roundTo(imageOnly, 6), effects: [],
             summary: "no answers given: the image alone decides" };
  }
  const fused = malignantOf(applyFusion(fusion, probabilities, answers), labels, malignant);
  const effects = names.map((name) => {
    const without = Object.fromEntries(names.filter((key) => key !== name).map((key) => [key, answers[key]]));
    const change = fused - malignantOf(applyFusion(fusion, probabilities, without), labels, malignant);
    return { question: name, answer: answers[name], words: answerWords(name, answers[name]), change: roundTo(change, 6) };
  });
  effects.sort((a, b) => Math.abs(b.change) - Math.abs(a.change));  // stable, like Python's sort
  return { image_only: roundTo(imageOnly, 6), fused: roundTo(fused, 6), effects, summary: summarySentence(imageOnly, fused, effects) };
}

// The "fusion" block of dermtool predict's result for one image: {answers, applied, image_only: {label,
// probability, probabilities}, malignant_probability} plus the fused probabilities ({label: p}).
// `probabilities`: the image model's {label: p}; `answers`: levels (readAnswers); `malignant`: the classes
// summed for referral with answers (the fusion's referral classes).
export function fuseResult(fusion, probabilities, answers, malignant) {
  const image = toArray(fusion, probabilities);
  const applied = Object.keys(answers || {}).length > 0;
  const fused = applied ? applyFusion(fusion, image, answers) : image;
  let best = 0;
  image.forEach((value, index) => { if (value > image[best]) best = index; });
  return {
    probabilities: toMap(fusion, fused),
    fusion: {
      answers: { ...(answers || {}) },
      applied,
      image_only: { label: fusion.labels[best], probability: image[best], probabilities: toMap(fusion, image) },
      malignant_probability: answerEffects(fusion, image, answers || {}, malignant),
    },
  };
}

// The loader's check of config.json (written by build.py from the model's checked dermtool.json): every number
// the decision uses must be a finite number in its range, the fusion's labels the model's. A config that breaks
// a rule is refused with one line naming the field: a tampered threshold never turns a referral into "benign".
export function checkConfig(config) {
  const fail = (field, value) => { throw new Error(`config.json: ${field} must be ${value}; the app was built from a corrupt or edited model`); };
  const probability = (value) => typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 1;
  const labels = config && Array.isArray(config.labels) ? config.labels : null;
  if (!labels || !labels.length || !labels.every((label) => typeof label === "string" && label)) fail("labels", "a list of class names");
  const rule = (point, field) => {
    if (!point || !probability(point.threshold)) fail(`${field}.threshold`, "a number in [0, 1]");
    if (!Array.isArray(point.classes) || !point.classes.every((label) => labels.includes(label))) fail(`${field}.classes`, "classes among the labels");
  };
  rule(config.referral, "referral");
  if (!probability(config.uncertainty_threshold)) fail("uncertainty_threshold", "a number in [0, 1]");
  const fusion = config.fusion;
  if (fusion) {
    rule(fusion.referral, "fusion.referral");
    if (!Array.isArray(fusion.labels) || fusion.labels.join("\n") !== labels.join("\n")) fail("fusion.labels", "the model's labels");
    for (const key of ["image_scale", "probability_floor"]) {
      if (typeof fusion[key] !== "number" || !Number.isFinite(fusion[key]) || fusion[key] <= 0) fail(`fusion.${key}`, "a positive number");
    }
    for (const [name, levels] of Object.entries(fusion.weights || {})) {
      for (const [level, values] of Object.entries(levels || {})) {
        if (!Array.isArray(values) || values.length !== labels.length || !values.every((value) => typeof value === "number" && Number.isFinite(value))) {
          fail(`fusion.weights.${name}.${level}`, `${labels.length} finite numbers`);
        }
      }
    }
  }
  // The lesion check (null: the model has none, and the app says so): a tampered threshold must not let
  // every photo through, nor turn every lesion away.
  const check = config.lesion_check;
  if (check !== null && check !== undefined) {
    if (typeof check.threshold !== "number" || !Number.isFinite(check.threshold) || check.threshold <= 0 || check.threshold > 1) {
      fail("lesion_check.threshold", "a number in (0, 1]");
    }
    if (typeof check.head_name !== "string" || !check.head_name) fail("lesion_check.head_name", "the name of the model's lesion-check head");
  }
  return config;
}
