"""Single-process xgboost, CPU threads vs device=cuda, on the flights schedule features (what ran on the H200).

Needs only numpy, pandas, scikit-learn and xgboost, so it runs where pyspark cannot:
    python bench/gpu_single_process.py PATH/TO/flights.csv.zip   # writes $OUT (or .)/gpu_single_process.json
"""
import json, os, time
import numpy as np, pandas as pd, xgboost as xgb
from sklearn.metrics import roc_auc_score
import sys
df = pd.read_csv(sys.argv[1] if len(sys.argv) > 1 else ".gpudata/flights.csv.zip")
df = df[df.arr_delay.notna()]
y = (df.arr_delay > 15).astype(int).to_numpy()
X = pd.DataFrame({"sched_dep": df.sched_dep_time, "sched_arr": df.sched_arr_time, "distance": df.distance,
                  "hour": df.hour, "dow": pd.to_datetime(df[["year", "month", "day"]]).dt.dayofweek,
                  "carrier": df.carrier.astype("category").cat.codes, "origin": df.origin.astype("category").cat.codes,
                  "dest": df.dest.astype("category").cat.codes}).to_numpy(dtype=np.float32)
out = {"gpu": os.popen("nvidia-smi -L").read().strip(), "cpu_threads": os.cpu_count(), "xgboost": xgb.__version__, "results": []}
params = dict(n_estimators=200, max_depth=6, learning_rate=0.1, tree_method="hist")
for rows in (100_000, 1_000_000, 3_000_000):
    reps = -(-rows // len(X))
    Xr, yr = np.tile(X, (reps, 1))[:rows], np.tile(y, reps)[:rows]
    entry = {"rows": rows}
    for device in ("cpu", "cuda"):
        m = xgb.XGBClassifier(**params, device=device, n_jobs=os.cpu_count())
        if device == "cuda":
            xgb.XGBClassifier(n_estimators=2, device="cuda").fit(Xr[:1000], yr[:1000])  # warm up the CUDA context
        t = time.perf_counter(); m.fit(Xr, yr); entry[f"{device}_s"] = round(time.perf_counter() - t, 2)
        entry[f"{device}_train_auc"] = round(float(roc_auc_score(yr, m.predict_proba(Xr)[:, 1])), 4)
    entry["cpu_over_gpu"] = round(entry["cpu_s"] / entry["cuda_s"], 2)
    out["results"].append(entry)
    print(json.dumps(entry), flush=True)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "gpu_single_process.json"), "w"), indent=2)
