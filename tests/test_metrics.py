import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest

from physadv.errors import InputError
from physadv.metrics import Predictions, Rate, accuracy, destruction_rate, destruction_reports, prefilter
from physadv.results import ResultRow


def predictions(top1: list[int], confidence: list[float], classes: int = 10) -> Predictions:
    """Top-5 whose first entry is ``top1``; the rest are the next classes (never the top-1)."""
    rows = [[(c + k) % classes for k in range(5)] for c in top1]
    probabilities = [[p] + [(1 - p) / 4] * 4 for p in confidence]
    return Predictions(np.array(rows), np.array(probabilities))


def test_destruction_rate_by_hand():
    clean = np.array([1, 1, 1, 1, 0, 1], dtype=bool)
    adversarial = np.array([0, 0, 0, 1, 0, 0], dtype=bool)
    transformed = np.array([1, 0, 1, 1, 1, 0], dtype=bool)
    # attacked = clean right and adversarial wrong: images 0, 1, 2, 5; destroyed among them: 0 and 2.
    rate = destruction_rate(clean, adversarial, transformed)
    assert (rate.numerator, rate.n) == (2, 4)
    assert rate.value == 0.5


def test_destruction_rate_with_nothing_attacked_is_undefined_not_zero():
    rate = destruction_rate(np.zeros(3, bool), np.zeros(3, bool), np.ones(3, bool))
    assert rate.n == 0 and math.isnan(rate.value)
    assert str(rate) == "n/a (0/0)"


def test_accuracy_counts_topk():
    p = predictions([3, 4, 5], [0.9, 0.9, 0.9])
    labels = np.array([3, 6, 0])
    assert accuracy(p, labels, 1) == Rate(1, 3)
    assert accuracy(p, labels, 5) == Rate(2, 3)  # 6 is 2nd in [4,5,6,7,8]; 0 is not in [5..9]


def test_prefiltered_destruction_equals_photo_adversarial_accuracy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 40)
    clean = predictions(list(labels), [0.95] * 40)
    adversarial = predictions(list((labels + 1) % 10), [0.9] * 40)
    photo_top1 = np.where(rng.random(40) < 0.3, labels, (labels + 2) % 10)
    transformed = predictions(list(photo_top1), [0.5] * 40)
    average, prefiltered = destruction_reports(clean, adversarial, transformed, labels)
    assert prefiltered.n_images == 40 and prefiltered.destruction_top1.n == 40
    assert prefiltered.destruction_top1.value == pytest.approx(accuracy(transformed, labels).value)
    assert prefiltered.destruction_top1.value == pytest.approx(np.mean(photo_top1 == labels))
    assert average.case == "average" and prefiltered.case == "prefiltered"


def test_prefilter_needs_confident_right_clean_and_confident_wrong_adversarial():
    labels = np.array([0, 0, 0, 0])
    clean = predictions([0, 0, 0, 1], [0.9, 0.7, 0.9, 0.9])
    adversarial = predictions([1, 1, 1, 1], [0.9, 0.9, 0.5, 0.9])
    assert prefilter(clean, adversarial, labels).tolist() == [True, False, False, False]


def test_rows_carry_fractions_and_denominators():
    labels = np.array([0, 1])
    clean = predictions([0, 1], [0.9, 0.9])
    adversarial = predictions([5, 1], [0.9, 0.9])
    transformed = predictions([0, 1], [0.9, 0.9])
    row = destruction_reports(clean, adversarial, transformed, labels)[0].result_row(
        method="fgsm", eps=8.0, transform="jpeg", strength=50.0, adversariality=0.5)
    assert row.top1_clean == 1.0 and row.top1_adv == 0.5 and row.top1_transformed == 1.0
    assert row.destruction_top1 == 1.0 and row.destruction_top1_n == 1
    assert row.n_images == 2 and row.case == "average"
    # Its JSON names the measured fields and only the optional ones it has, and reads back equal.
    data = row.to_json()
    assert "adversariality" in data and "model" not in data and "iterations" not in data
    assert ResultRow.from_json(json.loads(json.dumps(data)), "results.json") == row


@pytest.mark.parametrize("change, message", [
    ({"case": "worst"}, "case: 'worst' is not one of 'average', 'prefiltered'"),
    ({"top1_adv": 1.5}, "top1_adv: 1.5 is outside [0, 1]"),
    ({"n_images": -1}, "n_images: -1 is outside"),
    ({"destruction_top1_n": 1.5}, "destruction_top1_n: expected a whole number"),
    ({"method": None}, "method: expected text"),
    ({"colour": "red"}, "unknown row key(s) 'colour'"),
])
def test_a_row_read_from_a_file_is_checked(change, message):
    row = destruction_reports(predictions([0], [0.9]), predictions([1], [0.9]), predictions([0], [0.9]),
                              np.array([0]))[0].result_row(method="fgsm", eps=8.0, transform="photo", strength=None)
    assert ResultRow.from_json(row.to_json(), "r.json") == row
    with pytest.raises(InputError, match=re.escape(f"r.json.{message}" if "unknown" not in message
                                                   else f"r.json: {message}")):
        ResultRow.from_json(row.to_json() | change, "r.json")


def test_channel_severity_says_when_the_channel_destroys_clean_images():
    from physadv.metrics import channel_severity, severity_lines

    harsh = channel_severity(0.83, 0.95, 0.50, 0.74, 42)
    assert harsh["change_top1_points"] == -33.0 and harsh["change_top5_points"] == -21.0 and harsh["severe"]
    assert "destroys clean images too" in severity_lines(harsh)[-1] and "-5.4" in severity_lines(harsh)[0]
    mild = channel_severity(0.875, 0.969, 0.844, 0.958, 96)
    assert not mild["severe"] and len(severity_lines(mild)) == 1
    assert severity_lines(channel_severity(None, None, None, None, 0)) == [
        "channel severity: n/a (no photographed clean images with labels)"]


def test_summary_says_what_adversariality_counts_for_targeted_goals():
    """An ll image that drifts to another wrong class is a failure for adversariality yet is not
    destroyed: the summary must say so, or 0.00 adversariality beside a 0.60 destruction rate reads as a bug."""
    from physadv.metrics import format_table

    labels = np.array([0, 1])
    clean, adversarial = predictions([0, 1], [0.9, 0.9]), predictions([5, 7], [0.9, 0.9])
    report = destruction_reports(clean, adversarial, clean, labels)[0]
    fgsm = report.result_row(method="fgsm", eot="", eps=8.0, transform="photo", strength=None, adversariality=0.5)
    plain = format_table([fgsm])
    assert "counts successes" not in plain
    targeted = format_table([fgsm, replace(fgsm, method="ll+eot", eot="photo", adversariality=0.0)])
    note = targeted.splitlines()[-1]
    assert "ll+eot: top-1 = least-likely class" in note and "fgsm" not in note
