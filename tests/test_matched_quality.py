"""The Corti report's matched-quality section (issue 30): the dense accuracy gap between the learning methods by
Welch's t over members, and each PIE-count claim restated per point of dense error, jackknifed over seeds, on
synthetic tables written where the stages write theirs."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.io import write_csv
from common.metrics.pies import find_pies
from common.metrics.verdicts import FALSE, TOO_FEW, TRUE, UNDECIDED, jackknife, leave_one_out_pies
from common.studies.corti2022.claims import accuracy_gap_claim, count_difference, dense_accuracies
from common.studies.corti2022.paths import CortiPaths
from common.studies.corti2022.pies import write_leave_one_out
from common.studies.corti2022.report import matched_quality, seed_power, write_report

SEEDS = [0, 1, 2, 3, 4]
ACCURACY = {"supervised": [0.861, 0.850, 0.857, 0.853, 0.859], "supcon": [0.833, 0.831, 0.836, 0.829, 0.834]}


def models_table(method: str) -> pd.DataFrame:
    """A training stage's models.csv: dense members with their accuracies, a pruned population and a knob-tagged
    finetuning variant that the section must not count as dense."""
    rows = [dict(study="", dataset="digits", method=method, arch="wrn10_1", pruning="dense", sparsity=0.0, knobs="",
                 seed=s, test_accuracy=a) for s, a in zip(SEEDS, ACCURACY[method])]
    rows += [dict(rows[0], pruning="gmp_early", sparsity=0.9, test_accuracy=0.5),
             dict(rows[0], knobs="finetune-representation", test_accuracy=0.1)]
    return pd.DataFrame(rows)


def summary(method: str, pies: int) -> pd.DataFrame:
    """The PIE stage's summary row of one configuration, with the columns the report's tables read."""
    acc = np.array(ACCURACY[method])
    return pd.DataFrame([dict(pruning="global", sparsity=0.9, dense_models=5, pruned_models=5, pies=pies,
                              pie_rate=pies / 300, dense_accuracy_mean=acc.mean(), dense_accuracy_std=acc.std(ddof=1),
                              pruned_accuracy_mean=0.8, pruned_accuracy_std=0.01, dense_modal_accuracy_on_pies=0.5,
                              dense_modal_accuracy_on_rest=0.9)])


def write_stages(paths: CortiPaths) -> dict:
    """Populations whose SupCon pruning flips many more examples, written as the PIE and training stages write
    them -> {method: (dense preds, pruned preds)}."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 300)
    noisy = lambda p: np.where(rng.random((5, 300)) < p, labels, rng.integers(0, 5, (5, 300)))  # noqa: E731
    populations = {"supervised": (noisy(0.9), noisy(0.8)), "supcon": (noisy(0.9), noisy(0.45))}
    for method, (dense, pruned) in populations.items():
        pies = find_pies(dense, pruned)
        write_leave_one_out(paths.pie_leave_one_out("digits", method, "global", 0.9),
                            *leave_one_out_pies(dense, pruned, 5, SEEDS, SEEDS), pies)
        write_csv(summary(method, int(pies.sum())), paths.pie_summary("digits", method))
        write_csv(models_table(method), paths.models_csv("digits", method))
    return populations


def test_the_report_restates_each_pie_claim_per_point_of_dense_error(tmp_path):
    paths = CortiPaths(tmp_path)
    populations = write_stages(paths)
    gap_line, pie_line = matched_quality(paths, "digits")

    sup, con = (np.array(ACCURACY[m]) for m in ("supervised", "supcon"))
    interval = stats.ttest_ind(con, sup, equal_var=False).confidence_interval(0.95)
    assert f"{100 * (con.mean() - sup.mean()):+.1f}, 95 % CI [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]" \
        in gap_line
    assert "supervised 85.6 ± 0.4 %, SupCon 83.3 ± 0.3 %" in gap_line and "Welch t, 5 vs 5 seeds" in gap_line
    assert gap_line.endswith(f"**{TRUE}**")  # the interval [-2.9, -1.7] lies within ±3 points

    def rate(method, seeds):  # PIEs per point of the dense members' mean error, seeds kept
        dense, pruned = populations[method]
        error = 100 * (1 - np.mean([ACCURACY[method][s] for s in seeds]))
        return find_pies(dense[seeds], pruned[seeds]).sum() / error

    difference = lambda seeds: rate("supcon", seeds) - rate("supervised", seeds)  # noqa: E731
    expected = jackknife(difference(SEEDS), [difference([k for k in SEEDS if k != s]) for s in SEEDS])
    assert f"at 0.9 sparsity (global) SupCon has more PIEs per point of dense error than supervised: " \
           f"{rate('supcon', SEEDS):.1f} vs {rate('supervised', SEEDS):.1f}" in pie_line
    assert expected.interval_text(1) in pie_line and "jackknife over seeds, 5 vs 5 seeds" in pie_line
    assert pie_line.endswith(f"**{TRUE}**") and expected.verdict == TRUE

    report = write_report(paths, "digits").read_text()
    section = report[report.index("## Matched quality"):report.index("## Test accuracy")]
    assert "Welch's t over members" in section and gap_line in section and pie_line in section
    assert seed_power(paths, "digits")[0] in report[report.index("## What the seeds can tell"):]


def test_the_power_of_the_seeds_is_the_non_central_t_behind_detectable(tmp_path):
    """The report states K's power for a 20 % PIE-count excess (issue 30) from the spread the jackknife measured."""
    paths = CortiPaths(tmp_path)
    write_stages(paths)
    [line] = seed_power(paths, "digits")
    diff = count_difference(paths, "digits", ("supcon", "global", 0.9), ("supervised", "global", 0.9))
    sup_pies = int(pd.read_csv(paths.pie_summary("digits", "supervised"))["pies"].iloc[0])
    critical, shift = stats.t.ppf(0.975, 4), 0.2 * sup_pies / diff.se
    expected = stats.nct.sf(critical, 4, shift) + stats.nct.cdf(-critical, 4, shift)
    assert f"5 vs 5 seeds: a 20 % excess over supervised's {sup_pies} PIEs (+{0.2 * sup_pies:.0f}) would be found " \
           f"with {100 * expected:.0f} % power" in line
    assert diff.power(diff.detectable) == pytest.approx(0.8, abs=1e-3) and np.isnan(diff.power(np.nan))


@pytest.mark.parametrize("supcon, verdict", [([0.80, 0.81, 0.79, 0.80, 0.805], FALSE),
                                             ([0.83, 0.80, 0.86, 0.78, 0.85], UNDECIDED),
                                             ([0.83, 0.84], TOO_FEW)])
def test_the_accuracy_gap_reads_matched_only_when_its_whole_interval_lies_within_3_points(supcon, verdict):
    sup = dict(zip(SEEDS, ACCURACY["supervised"]))
    [line] = accuracy_gap_claim({"supervised": sup, "supcon": dict(enumerate(supcon))})
    assert line.endswith(f"**{verdict}**")


def test_dense_accuracies_read_only_the_dense_members_of_a_models_table():
    assert dense_accuracies(models_table("supcon")) == dict(zip(SEEDS, ACCURACY["supcon"]))
    assert dense_accuracies(pd.DataFrame()) == {}


def test_without_the_stages_tables_the_section_says_what_is_missing(tmp_path):
    paths = CortiPaths(tmp_path)
    write_stages(paths)
    paths.models_csv("digits", "supcon").unlink()
    [line] = matched_quality(paths, "digits")
    assert "needs the leave-one-seed-out PIE masks and the training stages' models.csv" in line
    assert line.endswith(f"**{UNDECIDED}**")
