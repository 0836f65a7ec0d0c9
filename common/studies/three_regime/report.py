"""The grid's tables and phase plots, per objective: grid.csv (one row per cell and retrain-seed pair, each row
carrying its cell's regime), cells.csv (one row per cell: means with intervals by the jackknife over seeds, the
regime), the five heatmaps and report.md."""
from __future__ import annotations

import numpy as np
import pandas as pd

from common.io import upsert_csv, write_text
from common.metrics.connectivity import cell_interval, frankle_barrier, regimes, zhou_barrier
from common.metrics.verdicts import FALSE, MIN_SEEDS, TOO_FEW, TRUE, UNDECIDED
from common.plots.phase import plot_phase
from common.studies.three_regime.config import STUDY
from common.studies.three_regime.knobs import KNOBS

KEYS = ["setting", "objective", "knob", "temperature", "density", "dense_seed", "retrain_seeds"]
CELL = ["setting", "objective", "knob", "temperature", "density"]
LEVEL = 0.95


def pair_table(errors: pd.DataFrame, connectivity: pd.DataFrame, cka: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and pair: test error (mean of the pair's), the barriers of the error the objective's
    connectivity uses (supervised: train error, their notebook; SupCon: the k-NN test error) — theirs, theirs with
    paths inside the endpoints' range counted 0 (the regime rule's) and Frankle's — and the CKAs."""
    curve = "train_error" if connectivity["train_error"].notna().all() else "test_error"
    paths = connectivity.sort_values("t").groupby(KEYS, sort=False)
    keys = [dict(zip(KEYS, key)) for key, _ in paths]
    curves = np.stack([path[curve].to_numpy() for _, path in paths])
    endpoints = np.array([path["test_error"].iloc[[0, -1]].mean() for _, path in paths])
    table = pd.DataFrame(keys).assign(barrier=zhou_barrier(curves), barrier_robust=zhou_barrier(curves, True),
                                      barrier_frankle=frankle_barrier(curves), barrier_curve=curve,
                                      endpoint_test_error=endpoints)
    table = table.merge(cka, on=KEYS, how="left")
    seeds = table["retrain_seeds"].str.split("-", expand=True).astype(int)
    members = errors.set_index(["temperature", "density", "dense_seed", "retrain_seed"])["test_error"]
    pair_errors = [np.mean([members.get((t, d, s, r), np.nan) for r in (a, b)])
                   for t, d, s, a, b in zip(table["temperature"], table["density"], table["dense_seed"], seeds[0],
                                            seeds[1])]
    table["test_error"] = pd.Series(pair_errors, index=table.index).fillna(table["endpoint_test_error"])  # SupCon
    collapsed = errors.set_index(["temperature", "density", "dense_seed", "retrain_seed"])["at_chance"]
    table["at_chance"] = [sum(bool(collapsed.get((t, d, s, r), False)) for r in (a, b))
                          for t, d, s, a, b in zip(table["temperature"], table["density"], table["dense_seed"],
                                                   seeds[0], seeds[1])]
    return table


def cell_table(table: pd.DataFrame, cka_column: str, knob: str, threshold: float) -> pd.DataFrame:
    """One row per cell, hottest temperature first: pairs, dense and retrain seeds, re-trained networks at chance
    and the pairs left out for them, the mean test error (every network), each barrier's mean, the rule's barrier
    and the CKA with their intervals (`cell_interval`: the jackknife over seeds), the regime, and whether regime I
    is shown, excluded or neither (`regime_I`)."""
    rows = []
    for key, cell in table.groupby(CELL, sort=False):
        retrain_pairs = cell["retrain_seeds"].str.split("-", expand=True).astype(int).to_numpy()
        retrain_seeds = len(np.unique(retrain_pairs))
        row = dict(zip(CELL, key), pairs=len(cell), dense_seeds=cell["dense_seed"].nunique(),
                   retrain_seeds=retrain_seeds, at_chance=round(cell["at_chance"].sum() / (retrain_seeds - 1)),
                   pairs_left_out=int((cell["at_chance"] > 0).sum()), test_error=cell["test_error"].mean(),
                   cka_column=cka_column)
        # a pair holding a re-training that collapsed to chance measures no connectivity (its path runs from chance
        # to a trained network: 'within the endpoints' range', 0 by the rule): left out of the barriers and CKA
        measured = cell.where(cell["at_chance"] == 0)
        row.update(barrier_theirs=measured["barrier"].mean(), barrier_frankle=measured["barrier_frankle"].mean())
        for name, column in (("barrier", "barrier_robust"), ("cka", cka_column)):
            row[name], row[f"{name}_low"], row[f"{name}_high"] = cell_interval(measured[column], cell["dense_seed"],
                                                                               retrain_pairs, LEVEL)
        rows.append(row)
    cells = pd.DataFrame(rows)
    cells = cells.sort_values(["temperature", "density"], ascending=[KNOBS[knob].hottest_first == "ascending", True])
    best = cells.groupby("density")["test_error"].transform("min")
    cells["normalized_test_error"] = cells["test_error"] - best  # their notebook: minus each load's best temperature
    grids = {name: as_grid(cells, name) for name in ("barrier_high", "cka_low", "cka_high")}
    labels = regimes(grids["barrier_high"], grids["cka_low"], grids["cka_high"], threshold)
    temperatures, densities = list(dict.fromkeys(cells["temperature"])), sorted(cells["density"].unique())
    regime = {(t, d): labels[i, j] for i, t in enumerate(temperatures) for j, d in enumerate(densities)}
    cells["regime"] = [regime[t, d] for t, d in zip(cells["temperature"], cells["density"])]
    cells["regime_I"] = regime_I_verdict(cells["barrier_low"], cells["barrier_high"], threshold)
    return cells.reset_index(drop=True)


def regime_I_verdict(barrier_low, barrier_high, threshold: float) -> np.ndarray:
    """The claim 'regime I' (barrier below the threshold) per cell: TRUE where the barrier's interval lies below
    the threshold, FALSE where it lies above (connected), UNDECIDED where it holds the threshold (the rule then
    labels the cell regime II without having excluded regime I), TOO FEW SEEDS without an interval."""
    low, high = np.asarray(barrier_low, dtype=float), np.asarray(barrier_high, dtype=float)
    return np.where(np.isnan(high), TOO_FEW, np.where(high < threshold, TRUE, np.where(low > threshold, FALSE,
                                                                                          UNDECIDED)))


def shown_regimes(cells: pd.DataFrame) -> np.ndarray:
    """The regimes as the figure and the report's table show them: a '?' after a regime-II label whose cell's
    barrier interval holds the threshold."""
    labels = as_grid(cells, "regime").astype(str)
    undecided = as_grid(cells.assign(undecided=cells["regime_I"] == UNDECIDED), "undecided") == 1
    return np.where(undecided, np.char.add(labels, "?"), labels)


def as_grid(cells: pd.DataFrame, column: str) -> np.ndarray:
    """cells.csv's `column` as a [temperature, density] grid, rows in the table's (hottest first) order."""
    temperatures = list(dict.fromkeys(cells["temperature"]))
    densities = sorted(cells["density"].unique())
    grid = cells.pivot(index="temperature", columns="density", values=column).reindex(index=temperatures,
                                                                                        columns=densities)
    return grid.to_numpy(dtype=float if pd.api.types.is_numeric_dtype(cells[column]) else object)


def caption(knob: str, threshold: float, cka_column: str, cells: pd.DataFrame) -> str:
    """The regime rule as the figure and the report state it."""
    dense, retrain = int(cells["dense_seeds"].min()), int(cells["retrain_seeds"].min())
    curve = "train error" if cka_column == "cka_softmax" else "k-NN test error"
    intervals = (f"{LEVEL:.0%} intervals over the pairs of {dense} dense x {retrain} retrain seeds by the jackknife "
                 f"over seeds of both kinds (dense and retrain seeds' delete-one variances summed, t on "
                 f"{min(dense, retrain) - 1} df)" if min(dense, retrain) >= MIN_SEEDS else
                 f"intervals by the jackknife over seeds: {dense} dense x {retrain} retrain seeds give none (it needs "
                 f"{MIN_SEEDS} of each), so no regime ('no interval')")
    return (f"Regimes by stated rules (ours; theirs are hand-drawn), on {intervals}. I: the barrier's interval lies "
            f"below {threshold:g} (m − e(t*) of the {curve}, a path within its endpoints' range counting 0). II-B: in "
            f"a density column, among the other cells, the {cka_column} interval lies above that of the column's "
            f"hottest regime-II cell (lowering the temperature made the outputs more similar; rows: "
            f"{KNOBS[knob].label}, hottest on top). II-A: the rest. '?': a regime-II cell whose barrier interval "
            f"holds {threshold:g}: regime I neither shown nor excluded. Pairs holding a re-training that ended at "
            f"chance are left out.")


def write_report(paths, dataset: str, tables: dict[str, pd.DataFrame], knob: str, threshold: float):
    """grid.csv and cells.csv over the objectives, a phase plot per objective, report.md; -> the report's path."""
    lines, all_cells, all_pairs = [f"# Three-regime phase diagram on {dataset} (knob: {knob})", ""], [], []
    for objective, table in tables.items():
        cka_column = "cka_softmax" if objective == "supervised" else "cka_features"
        cells = cell_table(table, cka_column, knob, threshold)
        all_cells.append(cells)
        all_pairs.append(table.merge(cells[CELL + ["regime"]], on=CELL, how="left"))
        figure = f"phase_{objective}_{knob}.png"
        text = caption(knob, threshold, cka_column, cells)
        plot_phase({name: as_grid(cells, column) for name, column in PANEL_COLUMNS.items()},
                   sorted(cells["density"].unique()), list(dict.fromkeys(cells["temperature"])),
                   shown_regimes(cells), f"{objective}: {dataset}", KNOBS[knob].label, text,
                   paths.study_file(dataset, STUDY, figure))
        lines += [f"## {objective}", "", text, "", _regime_table(cells), "", f"![phase plot]({figure})", "",
                  "Cells (means over their pairs with their intervals; re-trained networks that ended at chance, and "
                  "the pairs holding them, left out of the barriers and CKA):",
                  "", _cell_table(cells), ""]
    upsert_csv(paths.study_file(dataset, STUDY, "grid.csv"), pd.concat(all_pairs, ignore_index=True), KEYS)
    upsert_csv(paths.study_file(dataset, STUDY, "cells.csv"), pd.concat(all_cells, ignore_index=True), CELL)
    path = paths.study_file(dataset, STUDY, "report.md")
    write_text(path, "\n".join(lines))
    return path


PANEL_COLUMNS = {"test_error": "test_error", "normalized_test_error": "normalized_test_error",
                 "barrier": "barrier", "barrier_frankle": "barrier_frankle", "cka": "cka"}


def _cell_table(cells: pd.DataFrame) -> str:
    rows = ["| temperature | density | pairs | at chance (pairs left out) | test error | barrier (rule) [interval] | "
            "theirs | Frankle's | CKA [interval] | regime |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells.itertuples(index=False):
        rows.append(f"| {c.temperature:g} | {100 * c.density:g} % | {c.pairs} | {c.at_chance} ({c.pairs_left_out}) | "
                    f"{c.test_error:.4f} | {_with_interval(c.barrier, c.barrier_low, c.barrier_high, '+.4f')} | "
                    f"{c.barrier_theirs:+.4f} | {c.barrier_frankle:+.4f} | "
                    f"{_with_interval(c.cka, c.cka_low, c.cka_high, '.4f')} | {c.regime} |")
    return "\n".join(rows)


def _with_interval(value: float, low: float, high: float, form: str) -> str:
    """'-0.1450 [-0.5240, +0.2340]', or the value alone with '(no interval)' (too few seeds)."""
    if np.isnan(low):
        return f"{value:{form}} (no interval)"
    return f"{value:{form}} [{low:{form}}, {high:{form}}]"


def _regime_table(cells: pd.DataFrame) -> str:
    densities = sorted(cells["density"].unique())
    labels = shown_regimes(cells)
    rows = ["| temperature | " + " | ".join(f"{100 * d:g} %" for d in densities) + " |",
            "|---|" + "---|" * len(densities)]
    rows += [f"| {t:g} | " + " | ".join(labels[i]) + " |" for i, t in enumerate(dict.fromkeys(cells["temperature"]))]
    return "\n".join(rows)
