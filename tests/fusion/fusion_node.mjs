// Runs the PWA's fusion (mobile_demo/src/fusion.js) on the recorded inputs of tests/fusion/data/*.json and
// prints what it computed as JSON, for tests/fusion/test_fusion_js.py to compare with dermtool.fusion.
//   node tests/fusion/fusion_node.mjs FUSION_JS FIXTURE_JSON
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modulePath, fixturePath] = process.argv.slice(2);
const fusionJs = await import(pathToFileURL(modulePath).href);
const fixture = JSON.parse(readFileSync(fixturePath, "utf8"));

function attempt(work) {
  try {
    return { value: work() };
  } catch (error) {
    return { error: error.message };
  }
}

const results = {};
for (const [name, fusion] of Object.entries(fixture.fusions)) {
  const malignant = fusion.referral.classes;
  results[name] = fixture.answers.map((raw) => {
    const read = attempt(() => fusionJs.readAnswers(fusion, raw));
    if (read.error) return { error: read.error };
    const answers = read.value;
    return {
      answers,
      rows: fixture.probabilities[name].map((probabilities) => ({
        fused: fusionJs.applyFusion(fusion, probabilities, answers),
        effects: fusionJs.answerEffects(fusion, probabilities, answers, malignant),
        block: fusionJs.fuseResult(fusion, fusionJs.toMap(fusion, probabilities), answers, malignant),
      })),
    };
  });
}
const refused = fixture.refused.map((raw) => attempt(() => fusionJs.readAnswers(fixture.fusions.real, raw)));
const numbers = fixture.numbers.map((value) => ({
  fixed2: fusionJs.formatFixed(value, 2),
  fixed6: fusionJs.formatFixed(value, 6),
  round6: fusionJs.roundTo(value, 6),
}));
process.stdout.write(JSON.stringify({ results, refused, numbers }));
