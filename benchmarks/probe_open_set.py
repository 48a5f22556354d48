"""Probe (deleted after use): open-set scores on the leave-classes-out run (df, vasc never trained on).
Run: python benchmarks/probe_open_set.py  (needs runs/leave_classes_out); writes /tmp/fusion/openset.npz, prints
AUROC of each score (unseen df/vasc against validation lesions) and the benign share of unseen images when
the score turns the most unusual q of validation benign answers into uncertain."""
# Open-set probe on the leave-classes-out run: can a score on features/logits tell unseen df/vasc from known?
import csv, json, sys, numpy as np
from dermtool import metrics
import tf_keras as keras
from dermtool.run import RunFolder
from dermtool.data.preprocess import load_image, normalize
from dermtool.data.sources import run_split_records
r = RunFolder('runs/leave_classes_out'); m = r.load_model()
feat = keras.Model(m.inputs, [m.get_layer('pooled').output, m.get_layer('logits').output])
splits = run_split_records(r)
ham = '/work/shared/data/ham10000'
unseen = [row for row in csv.DictReader(open(ham + '/HAM10000_metadata.csv')) if row['dx'] in ('df', 'vasc')]
def run(paths):
    F, L = [], []
    for s in range(0, len(paths), 128):
        x = np.stack([load_image(p, r.input_spec) for p in paths[s:s+128]])
        f, l = feat.predict(normalize(x, r.input_spec), verbose=0); F.append(f); L.append(l)
    return np.concatenate(F), np.concatenate(L)
rng = np.random.default_rng(0)
tr = splits['train']; tr = [tr[i] for i in rng.choice(len(tr), 3000, replace=False)]
out = {}
for name, recs in [('train', tr), ('val', splits['val']), ('test', splits['test'])]:
    F, L = run([x.path for x in recs]); out[name + '_F'] = F; out[name + '_L'] = L
    out[name + '_y'] = np.array([r.labels.index(x.label) for x in recs]); out[name + '_src'] = np.array([x.source for x in recs])
    print(name, flush=True)
F, L = run([f"{ham}/images/{row['image_id']}.jpg" for row in unseen]); out['unseen_F'] = F; out['unseen_L'] = L
out['unseen_dx'] = np.array([row['dx'] for row in unseen])
np.savez('/tmp/fusion/openset.npz', temperature=r.temperature, **out)

# ---- evaluation ----
d = np.load('/tmp/fusion/openset.npz'); T = float(d['temperature'])
labels = ['akiec', 'bcc', 'bkl', 'mel', 'nv', 'scc']
ref = json.load(open('/work/main/runs/leave_classes_out/metrics.json'))['referral']
mal = [labels.index(c) for c in ref['classes']]; thr = ref['threshold']
def benign(L):
    p = metrics.softmax(L, T); return (p[:, mal].sum(1) < thr) & (p.max(1) >= 0.5)
Ftr, ytr = d['train_F'], d['train_y']
mu = np.stack([Ftr[ytr == c].mean(0) for c in range(len(labels))])
X = Ftr - mu[ytr]; cov = X.T @ X / len(X) + 1e-3 * np.eye(X.shape[1]); prec = np.linalg.inv(cov)
def maha(F):
    return np.min(np.stack([np.einsum('ij,jk,ik->i', F - m, prec, F - m) for m in mu], 1), 1)
Ntr = Ftr / np.linalg.norm(Ftr, axis=1, keepdims=True)
def knn(F, k=10):
    N = F / np.linalg.norm(F, axis=1, keepdims=True); s = N @ Ntr.T
    return -np.sort(s, 1)[:, -k]
def scores(F, L):
    p = metrics.softmax(L, T)
    return {'msp': -p.max(1), 'maxlogit': -L.max(1), 'energy': -T * np.log(np.exp(L / T).sum(1)),
            'mahalanobis': maha(F), 'knn10': knn(F)}
sv, su, st = scores(d['val_F'], d['val_L']), scores(d['unseen_F'], d['unseen_L']), scores(d['test_F'], d['test_L'])
bv, bu, bt = benign(d['val_L']), benign(d['unseen_L']), benign(d['test_L'])
print('called benign: unseen', bu.mean().round(3), 'known test', bt.mean().round(3))
for name in sv:
    auc = metrics.roc_auc(np.r_[np.zeros(len(sv[name])), np.ones(len(su[name]))], np.r_[sv[name], su[name]])
    auc_b = metrics.roc_auc(np.r_[np.zeros(bv.sum()), np.ones(bu.sum())], np.r_[sv[name][bv], su[name][bu]])
    row = [f'{name:12s} AUROC {auc:.3f} (among benign-called {auc_b:.3f})']
    for q in [0.05, 0.10, 0.20, 0.40, 0.60]:
        # threshold flags q of the validation images the rule calls benign
        t = np.quantile(sv[name][bv], 1 - q)
        row.append(f'flag {q:.0%} of val-benign: unseen benign {np.mean(bu & (su[name] < t)):.3f}, test known benign->uncertain {np.mean(bt & (st[name] >= t)):.3f}')
    print(' | '.join(row))
