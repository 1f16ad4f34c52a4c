"""What a person wants to look at after a training run, logged as MLflow artifacts: for a classifier ROC,
precision-recall and calibration curves and the confusion matrix at the scoring threshold; for a regressor
predicted against actual and the residuals; for both feature importance and a metrics JSON."""

from __future__ import annotations

from matplotlib.figure import Figure  # figures without pyplot: no backend switched, nothing shown
import mlflow
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve



def _subplots(figsize):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def log_evaluation_artifacts(labels: np.ndarray, scores: np.ndarray, threshold: float, importance: dict[str, float] | None,
                             metrics: dict[str, float]) -> dict:
    """Plot and log the evaluation of one model on its holdout; returns the metrics JSON it logged."""
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
    predicted = (scores >= threshold).astype(int)
    matrix = confusion_matrix(labels, predicted, labels=[0, 1])

    fig, ax = _subplots((5, 5))
    ax.plot(fpr, tpr, label=f"AUC {metrics['auc']:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
    ax.legend(loc="lower right")
    mlflow.log_figure(fig, "evaluation/roc_curve.png")

    fig, ax = _subplots((5, 5))
    ax.plot(recall, precision, label=f"PR-AUC {metrics['pr_auc']:.3f}")
    ax.axhline(labels.mean(), linestyle="--", color="grey", label=f"positive rate {labels.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (holdout)")
    ax.legend(loc="upper right")
    mlflow.log_figure(fig, "evaluation/pr_curve.png")

    fig, ax = _subplots((5, 5))
    ax.plot(prob_pred, prob_true, "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration (holdout)")
    ax.legend(loc="upper left")
    mlflow.log_figure(fig, "evaluation/calibration_curve.png")

    fig, ax = _subplots((4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count:,}", ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual",
           title=f"Confusion matrix at threshold {threshold}")
    mlflow.log_figure(fig, "evaluation/confusion_matrix.png")

    _log_importance(importance)
    tn, fp, fn, tp = (int(x) for x in matrix.ravel())
    report = {"holdout": metrics, "threshold": threshold,
              "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
              "feature_importance_gain": importance}
    mlflow.log_dict(report, "evaluation/metrics.json")
    return report


def _log_importance(importance: dict[str, float] | None) -> None:
    if not importance:  # the torch network has no gain importance
        return
    top = list(importance.items())[:25][::-1]
    fig, ax = _subplots((6, max(3, 0.3 * len(top))))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set(xlabel="gain", title="Feature importance")
    fig.tight_layout()
    mlflow.log_figure(fig, "evaluation/feature_importance.png")


def log_regression_artifacts(labels: np.ndarray, predictions: np.ndarray, importance: dict[str, float] | None,
                             metrics: dict[str, float]) -> dict:
    """Predicted against actual, the residual histogram, importance and the metrics JSON of a regressor."""
    fig, ax = _subplots((5, 5))
    ax.scatter(labels, predictions, s=2, alpha=0.3)
    low, high = float(min(labels.min(), predictions.min())), float(max(labels.max(), predictions.max()))
    ax.plot([low, high], [low, high], "--", color="grey")
    ax.set(xlabel="actual", ylabel="predicted", title=f"Holdout: RMSE {metrics['rmse']:.3f}, R2 {metrics['r2']:.3f}")
    mlflow.log_figure(fig, "evaluation/predicted_vs_actual.png")

    fig, ax = _subplots((5, 4))
    ax.hist(predictions - labels, bins=50)
    ax.set(xlabel="prediction - actual", ylabel="rows", title="Residuals (holdout)")
    mlflow.log_figure(fig, "evaluation/residuals.png")

    _log_importance(importance)
    report = {"holdout": metrics, "feature_importance_gain": importance}
    mlflow.log_dict(report, "evaluation/metrics.json")
    return report
