// Runs the PWA's multi-photo combination (mobile_demo/src/combine.js) on the cases of a JSON file and prints
// what it computed as JSON, for tests/explain/test_combine_js.py to compare with dermtool.prediction.multi_photo.
//   node tests/explain/combine_node.mjs COMBINE_JS CASES_JSON
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modulePath, casesPath] = process.argv.slice(2);
const combine = await import(pathToFileURL(modulePath).href);
const cases = JSON.parse(readFileSync(casesPath, "utf8"));

const results = cases.map(({ maps, rule }) => {
  try {
    return { combined: combine.combinePhotos(maps, rule) };
  } catch (error) {
    return { error: error.message };
  }
});
process.stdout.write(JSON.stringify(results));
