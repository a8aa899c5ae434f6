"""The Visual Decathlon score (Rebuffi et al., NIPS 2017).

``S = sum_d a_d * max(0, Emax_d - E_d) ** 2`` over the ten domains, with
``E_d`` the test error (%) on domain d, ``Emax_d = 2 x`` the error of the fully
fine-tuned baseline on d, and ``a_d = 1000 / Emax_d ** 2``: each domain gives at
most 1000 points, the baseline 250 per domain (2500 in all).
"""

import math

from keras_wrn.data.decathlon import DOMAINS

__all__ = ["DOMAINS", "BASELINE_ERRORS", "PUBLISHED", "score", "domain_scores"]

# Published per-domain accuracies (%) of the table in Rebuffi et al. 2017 (paper-numbers.md),
# in DOMAINS order, with each row's published score S.
PUBLISHED = {
    "feature-extractor": ((59.67, 23.31, 63.11, 80.33, 45.37, 68.16, 73.69, 58.79, 43.54, 26.80), 544),
    "scratch": ((59.87, 57.10, 75.73, 91.20, 37.77, 96.55, 56.30, 88.74, 96.63, 43.27), 1625),
    "finetune": ((59.87, 60.34, 82.12, 92.82, 55.53, 97.53, 81.41, 87.69, 96.55, 51.20), 2500),
    "series-adapters": ((59.67, 56.68, 81.20, 93.88, 50.85, 97.05, 66.24, 89.62, 96.13, 47.45), 2118),
    "parallel-adapters": ((60.32, 64.21, 81.91, 94.73, 58.83, 99.38, 84.68, 89.21, 96.54, 50.94), 3412),
}
# The baseline is the fully fine-tuned network: its errors set each domain's Emax.
BASELINE_ERRORS = {domain: round(100.0 - accuracy, 2) for domain, accuracy in zip(DOMAINS, PUBLISHED["finetune"][0])}


def _check(errors, name):
    if not isinstance(errors, dict) or not errors:
        raise ValueError(f"{name} must be a dict {{domain: error %}}, got {errors!r}.")
    for domain, error in errors.items():
        if not isinstance(error, (int, float)) or isinstance(error, bool) or not 0 <= error <= 100 or math.isnan(error):
            raise ValueError(f"{name}[{domain!r}]={error!r}: expected an error in percent, 0..100.")


def domain_scores(errors, baseline_errors=None):
    """Per-domain points ``{domain: a_d * max(0, Emax_d - E_d) ** 2}``."""
    baseline_errors = BASELINE_ERRORS if baseline_errors is None else baseline_errors
    _check(errors, "errors")
    _check(baseline_errors, "baseline_errors")
    unknown = sorted(set(errors) - set(baseline_errors))
    if unknown:
        raise ValueError(f"errors: unknown domain(s) {unknown}; the baseline has {sorted(baseline_errors)}.")
    points = {}
    for domain, error in errors.items():
        worst = 2.0 * baseline_errors[domain]
        if worst <= 0:
            raise ValueError(f"baseline_errors[{domain!r}] must be > 0 (Emax = 2 x the baseline error).")
        points[domain] = 1000.0 / worst**2 * max(0.0, worst - error) ** 2
    return points


def score(errors, baseline_errors=None, require_all=True):
    """The Decathlon score S of ``errors`` (``{domain: test error %}``).

    Args:
        baseline_errors: ``{domain: error %}`` of the fully fine-tuned baseline;
            defaults to the published one (`BASELINE_ERRORS`).
        require_all: every baseline domain must be given (the challenge's S);
            False scores a subset (at most 1000 points per given domain).
    """
    baseline = BASELINE_ERRORS if baseline_errors is None else baseline_errors
    missing = sorted(set(baseline) - set(errors)) if isinstance(errors, dict) else []
    if require_all and missing:
        raise ValueError(f"errors: missing domain(s) {missing}; pass require_all=False to score a subset.")
    return sum(domain_scores(errors, baseline).values())
