"""The grid's table and phase plots: grid.csv (one row per cell and retrain-seed pair), the means per cell, the
regimes by stated rules and the four heatmaps, per objective."""
from __future__ import annotations

import numpy as np
import pandas as pd

from common.io import upsert_csv, write_text
from common.metrics.connectivity import frankle_barrier, regimes, zhou_barrier
from common.plots.phase import plot_phase
from common.studies.three_regime.config import STUDY
from common.studies.three_regime.knobs import KNOBS

KEYS = ["setting", "objective", "knob", "temperature", "density", "dense_seed", "retrain_seeds"]


def pair_table(errors: pd.DataFrame, connectivity: pd.DataFrame, cka: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and pair: test error (mean of the pair's), both barriers of the error the objective's
    connectivity uses (supervised: train error, their notebook; SupCon: the k-NN test error), and the CKAs."""
    curve = "train_error" if connectivity["train_error"].notna().all() else "test_error"
    barriers = []
    for key, path in connectivity.sort_values("t").groupby(KEYS, sort=False):
        e = path[curve].to_numpy()
        barriers.append(dict(zip(KEYS, key), barrier=float(zhou_barrier(e)), barrier_frankle=float(frankle_barrier(e)),
                             barrier_curve=curve, endpoint_test_error=float(path["test_error"].iloc[[0, -1]].mean())))
    table = pd.DataFrame(barriers).merge(cka, on=KEYS, how="left")
    pair_errors = []
    for key in table[KEYS].itertuples(index=False):
        a, b = (int(s) for s in key.retrain_seeds.split("-"))
        members = errors[(errors["temperature"] == key.temperature) & (errors["density"] == key.density)
                         & (errors["dense_seed"] == key.dense_seed) & errors["retrain_seed"].isin([a, b])]
        pair_errors.append(members["test_error"].mean())
    table["test_error"] = pair_errors
    table["test_error"] = table["test_error"].fillna(table["endpoint_test_error"])  # SupCon: the k-NN error
    return table


def cell_means(table: pd.DataFrame, cka_column: str, threshold: float):
    """Grids [T, D] of the cell means, the normalised test error (minus each density's best temperature) and the
    regimes."""
    means = table.groupby(["temperature", "density"])[["test_error", "barrier", cka_column]].mean()
    temperatures = sorted(table["temperature"].unique())
    densities = sorted(table["density"].unique())
    grid = {name: means[name].unstack("density").reindex(index=temperatures, columns=densities).to_numpy()
            for name in ("test_error", "barrier", cka_column)}
    grid["cka"] = grid.pop(cka_column)
    grid["normalized_test_error"] = grid["test_error"] - np.nanmin(grid["test_error"], axis=0, keepdims=True)
    return grid, temperatures, densities, regimes(grid["barrier"], grid["cka"], threshold)


def write_report(paths, dataset: str, tables: dict[str, pd.DataFrame], knob: str, threshold: float):
    """grid.csv over the objectives, a phase plot per objective, report.md; -> the report's path."""
    grid = pd.concat(tables.values(), ignore_index=True)
    upsert_csv(paths.study_file(dataset, STUDY, "grid.csv"), grid, KEYS)  # other knobs' and grids' rows are kept
    lines = [f"# Three-regime phase diagram on {dataset} (knob: {knob})", ""]
    for objective, table in tables.items():
        cka_column = "cka_softmax" if objective == "supervised" else "cka_features"
        cells, temperatures, densities, labels = cell_means(table, cka_column, threshold)
        figure = f"phase_{objective}_{knob}.png"
        plot_phase(cells, densities, temperatures, labels, f"{objective}: {dataset}", KNOBS[knob].label,
                   paths.study_file(dataset, STUDY, figure))
        lines += [f"## {objective}", "",
                  f"Regimes (rows: {KNOBS[knob].label}; columns: density). I: mean barrier below {threshold:g} "
                  f"(train error for supervised, k-NN test error for SupCon); II-B: {cka_column} above its row's "
                  f"median; II-A: otherwise.", "", _regime_table(labels, temperatures, densities), "",
                  f"![phase plot]({figure})", "",
                  "Cell means (test error, barrier, CKA):", "", _cell_table(cells, temperatures, densities), ""]
    path = paths.study_file(dataset, STUDY, "report.md")
    write_text(path, "\n".join(lines))
    return path


def _cell_table(cells, temperatures, densities) -> str:
    rows = ["| temperature | density | test error | normalised | barrier | CKA |", "|---|---|---|---|---|---|"]
    for i, t in enumerate(temperatures):
        for j, d in enumerate(densities):
            rows.append(f"| {t:g} | {100 * d:g} % | {cells['test_error'][i, j]:.4f} | "
                        f"{cells['normalized_test_error'][i, j]:.4f} | {cells['barrier'][i, j]:+.4f} | "
                        f"{cells['cka'][i, j]:.4f} |")
    return "\n".join(rows)


def _regime_table(labels, temperatures, densities) -> str:
    rows = ["| temperature | " + " | ".join(f"{100 * d:g} %" for d in densities) + " |",
            "|---|" + "---|" * len(densities)]
    rows += [f"| {t:g} | " + " | ".join(labels[i]) + " |" for i, t in enumerate(temperatures)]
    return "\n".join(rows)
