"""Probe (deleted after use): not-a-lesion guard variants selected by leave-one-source-out between HAM10000
and PAD-UFES-20, then confirmed once on ISIC 2017 (a dermoscopic source never used for selection).

    python benchmarks/probe_guard_variants.py cache      # 64x64 inputs, statistics, int8 tflite probabilities
    python benchmarks/probe_guard_variants.py select     # the variant table (no ISIC 2017 image is read)
    python benchmarks/probe_guard_variants.py confirm    # today's and the selected guard on ISIC 2017

Probabilities: runs/multisource_cpu/models/int8.tflite (LiteRT, 1 thread) for fitting and scoring; the
product fits with the float model's. Cache: /tmp/guard/*.npz.
"""
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dermtool.explain.ood import FEATURE_NAMES, STATISTICS_SIZE, image_statistics, read_ood_file

OUT = Path("/tmp/guard")
RUN = "runs/multisource_cpu"
H, P = "ham10000", "pad_ufes_20"
F = list(FEATURE_NAMES)


def cache() -> None:
    from dermtool.data.images import load_rgb
    from dermtool.data.pipeline import load_images
    from dermtool.data.preprocess import resize
    from dermtool.data.sources import run_split_records
    from dermtool.explain.non_lesion import generate_non_lesion_images
    from dermtool.run import RunFolder
    from dermtool.runtime import TFLiteModel

    OUT.mkdir(exist_ok=True)
    run = RunFolder(RUN)
    spec = run.input_spec
    model = TFLiteModel(f"{RUN}/models/int8.tflite", threads=1)
    records = run_split_records(run)

    def save(name, images, labels, kinds=None):
        small = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(i)).resize(
            (STATISTICS_SIZE,) * 2, Image.Resampling.BILINEAR)) for i in images])
        np.savez_compressed(OUT / f"{name}.npz", small=small, stats=image_statistics(images),
                            probs=model.predict(images), labels=np.array(labels),
                            kinds=np.array(kinds if kinds is not None else labels))

    for source in (H, P):
        for split in ("train", "val", "test"):
            recs = [r for r in records[split] if r.source == source]
            if split == "train" and len(recs) > 2000:
                order = np.random.default_rng(0).permutation(len(recs))[:2000]
                recs = [recs[i] for i in sorted(order)]
            images, _ = load_images([r.path for r in recs], spec, progress=False)
            save(f"{source}_{split}", images, [r.label for r in recs])
    lesions = [load_rgb(r.path) for r in [r for r in records["train"] if r.source == H][:20]]
    generated = generate_non_lesion_images(count_per_kind=20, lesion_images=lesions)
    others = np.stack([resize(g.pixels, spec.image_size, spec.resize_policy) for g in generated])
    save("non_lesion", others, [g.name for g in generated], [g.kind for g in generated])
    rows = list(csv.DictReader(open("/work/shared/data/isic2017/metadata.csv")))
    images, _ = load_images([f"/work/shared/data/isic2017/images/{r['image_id']}.jpg" for r in rows], spec, progress=False)
    save("isic2017", images, [r["dx"] for r in rows])


def load(name):
    z = np.load(OUT / f"{name}.npz")
    return {k: z[k] for k in z.files}


def robust(v):
    c = np.median(v)
    s = (np.percentile(v, 75) - np.percentile(v, 25)) / 1.349
    return c, (s if s > 1e-6 else max(v.std(), 1e-6))


def msp(p):
    return 1 - p.max(1)


class Guard:
    def __init__(s, feats=None, cov="full", shrink=0.1, w=0.25, target=0.04, thr="pooled", clip=None):
        s.idx = [F.index(f) for f in (feats or F)]
        s.cov, s.shrink, s.w, s.target, s.thr, s.clip = cov, shrink, w, target, thr, clip

    def dist(s, X):
        z = (X[:, s.idx] - s.mu) / s.sd
        if s.clip:
            z = np.clip(z, -s.clip, s.clip)
        return np.log1p(np.einsum("ni,ij,nj->n", z, s.P, z))

    def comb(s, X, p):
        return (s.dist(X) - s.c[0]) / s.k[0] + s.w * (msp(p) - s.c[1]) / s.k[1]

    def fit(s, refs, cals):
        R = np.concatenate(refs)[:, s.idx]
        s.mu, s.sd = R.mean(0), np.maximum(R.std(0), 1e-3)
        Z = (R - s.mu) / s.sd
        if s.clip:
            Z = np.clip(Z, -s.clip, s.clip)
        C = np.cov(Z, rowvar=False) if s.cov == "full" else np.diag(np.var(Z, 0))
        s.P = np.linalg.inv((1 - s.shrink) * C + s.shrink * np.eye(len(s.idx)))
        X = np.concatenate([c[0] for c in cals]); p = np.concatenate([c[1] for c in cals])
        s.c, s.k = zip(robust(s.dist(X)), robust(msp(p)))
        if s.thr == "pooled":
            s.t = np.quantile(s.comb(X, p), 1 - s.target, method="higher") + 1e-9
        else:  # each fitted source at most target on its own validation images
            s.t = max(np.quantile(s.comb(*c), 1 - s.target, method="higher") for c in cals) + 1e-9
        return s

    def rej(s, X, p):
        return s.comb(X, p) >= s.t


RGB = ("red_mean", "green_mean", "blue_mean", "red_std", "green_std", "blue_std")
NOCOL = [f for f in F if f not in RGB]
VARIANTS = {
    "a today": dict(),
    "b1 no RGB means/spreads": dict(feats=NOCOL),
    "b2 no RGB, no hue": dict(feats=[f for f in NOCOL if not f.startswith("hue")]),
    "c1 diagonal": dict(cov="diag"),
    "c2 full, z clipped at 4": dict(clip=4.0),
    "c3 diagonal, no RGB": dict(cov="diag", feats=NOCOL),
    "d1 target 2 %": dict(target=0.02),
    "d2 per-source threshold": dict(thr="per_source"),
    "e1 softmax weight 0": dict(w=0.0),
    "e2 softmax weight 0.5": dict(w=0.5),
}
SELECTED = "c3 diagonal, no RGB"


def main(step: str) -> None:
    if step == "cache":
        return cache()
    S = {n: load(n) for n in [f"{s}_{k}" for s in (H, P) for k in ("train", "val", "test")] + ["non_lesion"]}
    st = lambda n: (S[n]["stats"], S[n]["probs"])  # noqa: E731
    allof = lambda s: tuple(np.concatenate([S[f"{s}_{k}"][x] for k in ("train", "val", "test")]) for x in ("stats", "probs"))  # noqa: E731
    rng = np.random.default_rng(0)
    n_pad = round(2000 * 440 / 7452)  # product-like reference: 2000 of the pooled training split
    ship_refs = [S[f"{H}_train"]["stats"][:2000 - n_pad], S[f"{P}_train"]["stats"][rng.permutation(440)[:n_pad]]]

    def fit(g, sources):
        refs = ship_refs if len(sources) == 2 else [S[f"{x}_train"]["stats"] for x in sources]
        return g.fit(refs, [st(f"{x}_val") for x in sources])

    nl = S["non_lesion"]
    if step == "select":
        print("variant | LOSO HAM out (test) | LOSO PAD out (test) | LOSO HAM out (all 5003) | LOSO PAD out (all 629)"
              " | in-source under LOSO (max) | shipped fit: HAM test | PAD test | non-lesions caught (shipped / min LOSO)")
        for name, kw in VARIANTS.items():
            gp, gh, g = fit(Guard(**kw), [P]), fit(Guard(**kw), [H]), fit(Guard(**kw), [H, P])
            cells = [gp.rej(*st(f"{H}_test")).mean(), gh.rej(*st(f"{P}_test")).mean(), gp.rej(*allof(H)).mean(),
                     gh.rej(*allof(P)).mean(), max(gp.rej(*st(f"{P}_test")).mean(), gh.rej(*st(f"{H}_test")).mean()),
                     g.rej(*st(f"{H}_test")).mean(), g.rej(*st(f"{P}_test")).mean()]
            caught = [x.rej(nl["stats"], nl["probs"]).mean() for x in (g, gp, gh)]
            print(f"{name} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {caught[0]:.3f} / {min(caught[1:]):.3f}")
    elif step == "confirm":
        isic = load("isic2017"); lab = isic["labels"]
        shipped = read_ood_file(f"{RUN}/ood.json")
        raw = {"image_statistics": shipped.statistics_distance(isic["stats"]), "max_softmax": msp(isic["probs"])}
        results = {"shipped ood.json": shipped.combine(raw) >= shipped.threshold}
        for name in ("a today", SELECTED):
            results[name] = fit(Guard(**VARIANTS[name]), [H, P]).rej(isic["stats"], isic["probs"])
        for name, r in results.items():
            print(f"{name}: ISIC 2017 rejected {r.mean():.3f} " + " ".join(f"{l} {r[lab == l].mean():.3f}" for l in sorted(set(lab))))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "select")
