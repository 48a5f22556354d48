// dermtool questionnaire: the questions of the model's fusion as a short form beside the photo, shared by
// `dermtool serve` (static/app.js) and the mobile demo (mobile_demo/build.py copies this file next to its
// app.js). Every question is skippable: "unknown" (an empty value) is the default and adds nothing. The
// questions come from the fusion's JSON (dermtool.fusion.questionnaire.schema()). No third-party code.

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

// Fill the <form> `form` with one control per question (name = the question's name, id q-NAME) and a
// button that clears every answer; `onChange()` runs when the answers change (at once on a choice or when
// a field is left, half a second after typing stops). Without questions (a model with no fusion) the form
// stays hidden.
export function renderQuestionnaire(form, questions, onChange) {
  form.replaceChildren();
  form.hidden = !(questions && questions.length);
  if (form.hidden) return;
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
    label.append(text, input);
    grid.append(label);
  }
  const clear = document.createElement("button");
  clear.type = "button";
  clear.className = "button clear-answers";
  clear.textContent = "Clear answers";
  let last = JSON.stringify(readQuestionnaire(form));
  let timer = null;
  const changed = () => {
    clearTimeout(timer);
    const now = JSON.stringify(readQuestionnaire(form));
    if (now === last) return;
    last = now;
    onChange();
  };
  clear.addEventListener("click", () => {
    form.reset();
    changed();
  });
  fieldset.append(legend, help, grid, clear);
  form.append(fieldset);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", changed);
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(changed, 500);
  });
}

// {question: answer} of every question answered (empty = unknown, left out), in the form's order.
export function readQuestionnaire(form) {
  const answers = {};
  if (!form || form.hidden) return answers;
  for (const element of form.querySelectorAll("input[name], select[name]")) {
    // A number field holding something that is not a number reads as "" in the browser: say so instead.
    const value = element.validity && element.validity.badInput ? "not a number" : element.value.trim();
    if (value) answers[element.name] = value;
  }
  return answers;
}
