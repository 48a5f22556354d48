// Several photos of one lesion -> one set of probabilities, as dermtool.prediction.multi_photo combines them.
// A port that must give the same numbers (to 1e-6): tests/explain/test_combine_js.py runs it with node on
// recorded inputs against the Python.
//
//   mean            the arithmetic mean of the photos' probabilities
//   geometric_mean  exp(mean(log(max(p, probability_floor)))), renormalised to sum to 1
//   max_referral    the whole map of the photo whose summed probability of the referral classes is highest
//                   (ties: the first such photo)
//
// `rule` is the model's dermtool.json "multi_photo" object ({rule, probability_floor, referral_classes, ...};
// config.json carries it) or a bare rule name. Photos the lesion check rejected are left out by the caller
// before combining. No DOM here: node runs it.

export const RULES = ["mean", "geometric_mean", "max_referral"];
export const DEFAULT_PROBABILITY_FLOOR = 1e-4;

// The rule object of a name or of dermtool.json's "multi_photo"; throws on a rule it does not know.
export function readRule(rule) {
  const item = typeof rule === "string" ? { rule } : rule;
  if (!item || typeof item.rule !== "string") {
    throw new Error(`multi_photo must be an object with a "rule" name (${RULES.join(", ")})`);
  }
  if (!RULES.includes(item.rule)) {
    throw new Error(`unknown multi-photo rule '${item.rule}'; the rules are ${RULES.join(", ")}`);
  }
  const floor = item.probability_floor ?? DEFAULT_PROBABILITY_FLOOR;
  if (typeof floor !== "number" || !Number.isFinite(floor) || floor <= 0 || floor >= 1) {
    throw new Error(`multi-photo probability_floor must be a number in (0, 1), got ${floor}`);
  }
  const classes = item.referral_classes ?? [];
  if (item.rule === "max_referral" && classes.length === 0) {
    throw new Error("the multi-photo rule max_referral needs referral_classes (the model's referral classes, from its metadata)");
  }
  return { rule: item.rule, probabilityFloor: floor, referralClasses: classes };
}

// [{label: p}, ...] (one map per kept photo, the same labels in each) -> {label: p}, labels in the first map's order.
export function combinePhotos(probabilityMaps, rule) {
  const { rule: name, probabilityFloor, referralClasses } = readRule(rule);
  if (!Array.isArray(probabilityMaps) || probabilityMaps.length === 0) {
    throw new Error("a lesion needs at least one photo that was not rejected");
  }
  const labels = Object.keys(probabilityMaps[0]);
  probabilityMaps.forEach((map, index) => {
    const keys = Object.keys(map);
    if (keys.length !== labels.length || !labels.every((label) => label in map)) {
      throw new Error(`photo ${index + 1} has the classes ${[...keys].sort().join(", ")}, photo 1 ${[...labels].sort().join(", ")}: the photos of a lesion must come from one model`);
    }
  });
  const count = probabilityMaps.length;
  const combined = {};
  if (name === "mean") {
    for (const label of labels) {
      let sum = 0;
      for (const map of probabilityMaps) sum += Number(map[label]);
      combined[label] = sum / count;
    }
    return combined;
  }
  if (name === "geometric_mean") {
    const logs = labels.map((label) => {
      let sum = 0;
      for (const map of probabilityMaps) sum += Math.log(Math.max(Number(map[label]), probabilityFloor));
      return sum / count;
    });
    const top = Math.max(...logs);
    const values = logs.map((value) => Math.exp(value - top));
    const total = values.reduce((a, b) => a + b, 0);
    labels.forEach((label, index) => { combined[label] = values[index] / total; });
    return combined;
  }
  let best = 0;
  let bestReferral = -Infinity;
  probabilityMaps.forEach((map, index) => {
    let referral = 0;
    for (const label of labels) if (referralClasses.includes(label)) referral += Number(map[label]);
    if (referral > bestReferral) { best = index; bestReferral = referral; }
  });
  for (const label of labels) combined[label] = Number(probabilityMaps[best][label]);
  return combined;
}
