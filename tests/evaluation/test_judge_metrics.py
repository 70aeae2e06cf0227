"""AUROC / FNR / FPR arithmetic on hand-made examples."""

from __future__ import annotations

import pytest

from booster.evaluation.judges.metrics import (
    auroc,
    best_accuracy_threshold,
    classification_metrics,
    share_at_or_above,
)


def test_rates_on_a_hand_made_example():
    # 4 harmful (True), 4 safe; threshold 0.5 flags scores >= 0.5
    labels = [True, True, True, True, False, False, False, False]
    scores = [0.9, 0.8, 0.5, 0.2, 0.6, 0.4, 0.1, 0.0]
    m = classification_metrics(labels, scores, 0.5)
    # flagged: 0.9 0.8 0.5 (harmful) and 0.6 (safe) -> 1 false negative, 1 false positive
    assert m["false_negatives"] == 1 and m["false_positives"] == 1
    assert m["fnr"] == pytest.approx(1 / 4)
    assert m["fpr"] == pytest.approx(1 / 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    # pairs (harmful, safe) with harmful ranked higher: 0.9, 0.8 beat all 4 -> 8;
    # 0.5 beats 0.4, 0.1, 0.0 -> 3; 0.2 beats 0.1, 0.0 -> 2; total 13 of 16
    assert m["auroc"] == pytest.approx(13 / 16)
    assert (m["n"], m["n_harmful"], m["n_safe"]) == (8, 4, 4)


def test_auroc_ties_count_one_half_and_extremes():
    assert auroc([True, False], [0.5, 0.5]) == pytest.approx(0.5)
    assert auroc([True, True, False], [0.7, 0.3, 0.3]) == pytest.approx((1 + 0.5) / 2)
    assert auroc([True, False, False], [1.0, 0.2, 0.1]) == 1.0
    assert auroc([False, True], [1.0, 0.0]) == 0.0


def test_one_class_sets():
    m = classification_metrics([True, True], [0.9, 0.1], 0.5)
    assert m["fnr"] == 0.5 and m["fpr"] is None and m["auroc"] is None
    with pytest.raises(ValueError):
        auroc([True, True], [0.1, 0.2])
    assert share_at_or_above([0.1, 0.5, 0.9], 0.5) == pytest.approx(2 / 3)


def test_best_accuracy_threshold_separates_when_possible():
    t = best_accuracy_threshold([False, False, True, True], [0.1, 0.3, 0.6, 0.9])
    assert 0.3 < t <= 0.6
    assert classification_metrics([False, False, True, True], [0.1, 0.3, 0.6, 0.9], t)["accuracy"] == 1.0
