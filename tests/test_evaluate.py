import numpy as np
import pytest

from cifar_core import evaluate


def test_accuracy_top3_and_confusion_on_a_known_case():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1]])
    assert evaluate.accuracy(y, probs) == 0.5
    assert evaluate.top_k_accuracy(y, probs, 2) == 0.75  # the last one: 2 is third
    assert evaluate.top_k_accuracy(y, probs, 3) == 1.0
    assert evaluate.confusion(y, probs.argmax(1), 3).tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]


def test_classification_metrics_macro_f1_matches_hand_computation():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])
    m = evaluate.classification_metrics(y, probs, ["a", "b"])
    f1_a = 2 * 1.0 * 0.5 / 1.5  # precision 1, recall 0.5
    f1_b = 2 * (2 / 3) * 1.0 / (2 / 3 + 1)
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.7, 0.9])), rel=1e-5)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20000)
    right = rng.random(20000) < 0.7  # 70% right at 70% confidence: calibrated
    pred = np.where(right, y, 1 - y)
    probs = np.where(pred[:, None] == np.arange(2), 0.7, 0.3)
    assert evaluate.expected_calibration_error(y, probs) < 0.02
    over = np.where(pred[:, None] == np.arange(2), 0.99, 0.01)
    assert evaluate.expected_calibration_error(y, over) == pytest.approx(0.29, abs=0.02)


def test_mcnemar_counts_disagreements_and_p_value():
    a = np.array([True] * 30 + [False] * 5 + [True] * 10)
    b = np.array([True] * 30 + [True] * 5 + [False] * 10)
    result = evaluate.mcnemar_test(a, b)
    assert (result["only_a_right"], result["only_b_right"], result["both_right"]) == (10, 5, 30)
    assert 0.2 < result["p_value"] < 0.4  # binomial(10 of 15): p = 0.30
    assert evaluate.mcnemar_test(a, a)["p_value"] == 1.0


@pytest.mark.parametrize("k, n", [(0, 1), (3, 7), (7, 7), (5, 15), (120, 491), (2000, 4100), (0, 1500)])
def test_mcnemar_p_value_is_scipys_exact_binomial_test(k, n):
    # Exact integers instead of scipy.stats (whose import the dashboard's Compare page paid).
    stats = pytest.importorskip("scipy.stats")
    a = np.array([True] * k + [False] * (n - k) + [True] * 4)
    b = np.array([False] * k + [True] * (n - k) + [True] * 4)
    expected = stats.binomtest(k, n, 0.5).pvalue
    assert evaluate.mcnemar_test(a, b)["p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_importing_evaluate_leaves_sklearn_and_scipy_unloaded():
    import subprocess
    import sys

    code = "import sys, cifar_core.evaluate; print([m for m in ('sklearn', 'scipy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_confusion_counts_are_scikit_learns():
    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    expected = pytest.importorskip("sklearn.metrics").confusion_matrix(y, pred, labels=list(range(10)))
    np.testing.assert_array_equal(evaluate.confusion(y, pred, 10), expected)
    assert evaluate.confusion(np.array([], int), np.array([], int), 3).shape == (3, 3)


def test_per_class_report_has_one_row_per_class():
    rows = evaluate.per_class_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["x", "y", "z"])
    assert [r["class"] for r in rows] == ["x", "y", "z"]
    assert rows[1]["recall"] == 0.5 and rows[2]["support"] == 0


def test_latency_and_throughput_measure_the_callable():
    import time

    slow = lambda batch: time.sleep(0.01)  # noqa: E731
    images = np.zeros((4, 32, 32, 3), np.uint8)
    assert 9 <= evaluate.latency_ms_per_image(slow, images[0], repeats=3) < 100
    assert evaluate.throughput_images_per_s(slow, images, batch_size=8, repeats=2) < 8 / 0.009


def test_mistakes_first_puts_the_pairs_confusions_first_in_test_order():
    names = ["airplane", "cat", "dog", "frog"]
    y_true = np.array([1, 0, 2, 3, 1, 2, 0])
    y_pred = np.array([2, 3, 2, 1, 1, 1, 0])  # wrong: 0 (cat->dog), 1, 3, 5 (dog->cat)
    assert evaluate.mistakes_first(y_true, y_pred, names).tolist() == [0, 5, 1, 3]
    assert evaluate.mistakes_first(y_true, y_pred, ["a", "b", "c", "d"]).tolist() == [0, 1, 3, 5]
    assert evaluate.mistakes_first(y_true, y_true, names).size == 0
