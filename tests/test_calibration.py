"""optfusion_tf.analysis.calibration: ECE over bins of equal mass, and the reliability diagram."""

import numpy as np
import pytest

from optfusion_tf.analysis.architecture_plot import figure_to_array
from optfusion_tf.analysis.calibration import calibration, draw_reliability_diagram


def test_golden_values_on_a_tiny_split():
    labels = np.array([0, 0, 1, 0, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    result = calibration(labels, probabilities, bins=2)
    # Bins of 3: [0.1, 0.2, 0.3] (mean 0.2, observed 1/3), [0.6, 0.7, 0.8] (mean 0.7, 2/3).
    assert [b["examples"] for b in result["bins"]] == [3, 3]
    assert result["bins"][0]["mean_predicted"] == pytest.approx(0.2)
    assert result["bins"][0]["observed_rate"] == pytest.approx(1 / 3)
    assert result["ece"] == pytest.approx(0.5 * abs(0.2 - 1 / 3) + 0.5 * abs(0.7 - 2 / 3))
    assert result["mean_predicted"] == pytest.approx(0.45) and result["observed_rate"] == 0.5


def test_a_calibrated_model_has_a_small_ece_and_a_shifted_one_does_not():
    rng = np.random.default_rng(0)
    p = rng.beta(1, 20, size=200_000)  # CTR-like: most predictions near 0
    labels = rng.random(p.size) < p
    calibrated = calibration(labels, p)
    assert calibrated["ece"] < 0.002 and len(calibrated["bins"]) == 10
    assert calibrated["mean_predicted"] == pytest.approx(calibrated["observed_rate"], abs=0.002)
    doubled = calibration(labels, np.minimum(2 * p, 1.0))
    assert doubled["ece"] > 0.03


def test_repeated_predictions_never_split_a_bin():
    result = calibration(np.array([0, 1, 0, 1]), np.full(4, 0.3), bins=10)
    assert result["bins"] == [{"mean_predicted": 0.3, "observed_rate": 0.5, "examples": 4}]
    assert result["ece"] == pytest.approx(0.2)


def test_errors():
    with pytest.raises(ValueError, match="as many probabilities as labels"):
        calibration(np.array([0, 1]), np.array([0.5]))
    with pytest.raises(ValueError, match="bins must be >= 1"):
        calibration(np.array([0, 1]), np.array([0.5, 0.5]), bins=0)


def test_the_diagram_renders():
    result = calibration(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), bins=2)
    image = figure_to_array(draw_reliability_diagram(result, "test split"))
    assert image.dtype == np.uint8 and image.shape[0] == 1 and image.shape[-1] == 4
