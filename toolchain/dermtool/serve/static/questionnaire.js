// dermtool questionnaire: the questions of the model's fusion as a short form beside the photo, shared by
// `dermtool serve` (static/app.js) and the mobile demo (mobile_demo/build.py copies this file next to its
// app.js). Every question is skippable: "unknown" (an empty value) is the default and adds nothing. The
// questions come from the fusion's JSON (dermtool.fusion.questionnaire.schema()). An answer that is not
// understood (an age of 150) is shown beside its field in plain words and left out; the other answers are
// used. A new photo starts a new patient (clearAnswers) unless "same lesion or patient" is ticked
// (keepAnswers). No third-party code.

function levelText(level) {
  return level.replaceAll("_", " / ");
}

function control(question) {
  if (question.kind === "number") {
    const input = document.createElement("input");
    input.type = "number";
    input.inputMode = "numeric";
    input.min = String(question.minimum);
    input.max = String(question.maximum);
    input.step = "1";
    input.placeholder = "unknown";
    return input;
  }
  const select = document.createElement("select");
  const unknown = document.createElement("option");
  unknown.value = "";
  unknown.textContent = "unknown";
  select.append(unknown);
  for (const level of question.levels) {
    const option = document.createElement("option");
    option.value = level;
    option.textContent = levelText(level);
    select.append(option);
  }
  return select;
}

// What is wrong with a number field's value, in plain words (null when it is fine or empty).
function numberProblem(question, element) {
  const text = element.value.trim();
  const bad = element.validity && element.validity.badInput;
  if (!text && !bad) return null;
  const number = Number(text);
  if (bad || !Number.isFinite(number) || number < question.minimum || number > question.maximum) {
    const what = question.name === "age" ? "the age in years" : "a number";
    return `Not understood: enter ${what} from ${question.minimum} to ${question.maximum}, or leave it empty `
      + "if you do not know. This answer is not used.";
  }
  return null;
}

// Fill the <form> `form` with one control per question (name = the question's name, id q-NAME; under each,
// a line #q-NAME-problem for an answer that is not understood), a "same lesion or patient" box (#same-patient:
// keep the answers for the next photo) and a button that clears every answer; `onChange()` runs when the
// answers change (at once on a choice or when a field is left, half a second after typing stops). Without
// questions (a model with no fusion) the form stays hidden.
export function renderQuestionnaire(form, questions, onChange) {
  form.replaceChildren();
  form.hidden = !(questions && questions.length);
  if (form.hidden) return;
  form.questionnaire = { questions, last: "{}" };
  const fieldset = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = "Questions (optional)";
  const help = document.createElement("p");
  help.className = "muted small";
  help.textContent = "Answer what you know; leave the rest as \u201cunknown\u201d. The answers are combined with the photo.";
  const grid = document.createElement("div");
  grid.className = "question-grid";
  for (const question of questions) {
    const label = document.createElement("label");
    label.className = "question";
    const text = document.createElement("span");
    text.textContent = question.text;
    const input = control(question);
    input.name = question.name;
    input.id = `q-${question.name}`;
    label.htmlFor = input.id;
    const problem = document.createElement("span");
    problem.className = "question-problem";
    problem.id = `q-${question.name}-problem`;
    problem.setAttribute("role", "alert");
    problem.hidden = true;
    input.setAttribute("aria-describedby", problem.id);
    label.append(text, input, problem);
    grid.append(label);
  }
  const keep = document.createElement("label");
  keep.className = "keep-answers";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = "same-patient";
  const keepText = document.createElement("span");
  keepText.textContent = "Same lesion or patient: keep these answers for the next photo";
  keep.append(box, keepText);
  const clear = document.createElement("button");
  clear.type = "button";
  clear.className = "button clear-answers";
  clear.textContent = "Clear answers";
  let timer = null;
  const changed = () => {
    clearTimeout(timer);
    const now = JSON.stringify(readQuestionnaire(form));
    if (now === form.questionnaire.last) return;
    form.questionnaire.last = now;
    onChange();
  };
  clear.addEventListener("click", () => {
    clearAnswers(form);
    onChange();
  });
  fieldset.append(legend, help, grid, keep, clear);
  form.append(fieldset);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", (event) => { if (event.target !== box) changed(); });
  form.addEventListener("input", (event) => {
    if (event.target === box) return;
    clearTimeout(timer);
    timer = setTimeout(changed, 500);
  });
}

// Show `text` beside question `name`'s field (empty text: hide it). Returns false when there is no such field.
export function showQuestionProblem(form, name, text) {
  const problem = form && form.querySelector(`#q-${CSS.escape(name)}-problem`);
  const input = form && form.querySelector(`#q-${CSS.escape(name)}`);
  if (!problem || !input) return false;
  problem.textContent = text || "";
  problem.hidden = !text;
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return true;
}

// {question: answer} of every question answered and understood (empty = unknown, left out), in the form's
// order. A number field whose value is not understood is left out and its problem shown beside it.
export function readQuestionnaire(form) {
  const answers = {};
  if (!form || form.hidden) return answers;
  const questions = (form.questionnaire && form.questionnaire.questions) || [];
  for (const element of form.querySelectorAll("input[name], select[name]")) {
    const question = questions.find((item) => item.name === element.name);
    if (question && question.kind === "number") {
      const problem = numberProblem(question, element);
      showQuestionProblem(form, element.name, problem);
      if (problem) continue;
    }
    const value = element.value.trim();
    if (value) answers[element.name] = value;
  }
  return answers;
}

// The names of the questions whose answer is not understood (shown beside their fields, not used).
export function unreadAnswers(form) {
  if (!form || form.hidden) return [];
  return [...form.querySelectorAll(".question-problem:not([hidden])")].map((item) => item.id.slice(2, -"-problem".length));
}

// Every answer back to unknown, the problems hidden (a new patient). "Same lesion or patient" stays as it is.
export function clearAnswers(form) {
  if (!form || form.hidden) return;
  for (const element of form.querySelectorAll("input[name], select[name]")) {
    element.value = "";
    showQuestionProblem(form, element.name, "");
  }
  if (form.questionnaire) form.questionnaire.last = "{}";
}

// Whether the health worker said the next photo is of the same lesion or patient (keep the answers).
export function keepAnswers(form) {
  const box = form && !form.hidden ? form.querySelector("#same-patient") : null;
  return Boolean(box && box.checked);
}
