"""Voting ensembles of finished runs: several nets from random starts, then a vote (numpy only).

Runs that differ only in their seed form one ensemble; each must have saved its test-set
probabilities (`test_predictions.npz`, written for every classification run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dlrun import results

# The columns of `vote` that are accuracies (fractions); the others are counts and settings.
ACCURACIES = ("member_mean", "member_best", "member_worst", "mean_probability_vote", "majority_vote")


def vote(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracies of the members and of two votes, for probabilities [members, examples, classes].

    mean_probability: argmax of the averaged probabilities; majority: the most frequent member
    prediction (ties to the lowest class id).
    """
    predictions = probabilities.argmax(axis=-1)  # [members, examples]
    members = (predictions == labels[None]).mean(axis=1)
    mean_probability = (probabilities.mean(axis=0).argmax(axis=-1) == labels).mean()
    counts = np.stack([(predictions == k).sum(axis=0) for k in range(probabilities.shape[-1])])
    majority = (counts.argmax(axis=0) == labels).mean()
    return {
        "members": len(members),
        "member_mean": float(members.mean()),
        "member_best": float(members.max()),
        "member_worst": float(members.min()),
        "mean_probability_vote": float(mean_probability),
        "majority_vote": float(majority),
    }


def ensembles(rows: pd.DataFrame, varying: list) -> pd.DataFrame:
    """One row per ensemble: the runs sharing every varying hyperparameter except the seed."""
    keys = [key for key in varying if key != "seed"]
    groups = rows.groupby(keys, dropna=False) if keys else [((), rows)]
    out = []
    for key, members in groups:
        loaded = [_load(Path(folder)) for folder in members["folder"]]
        loaded = [item for item in loaded if item is not None]
        if len(loaded) < 2:
            continue
        labels = loaded[0][1]
        if any(len(item[1]) != len(labels) or (item[1] != labels).any() for item in loaded):
            continue  # not evaluated on the same test set: no vote
        summary = vote(np.stack([item[0] for item in loaded]), labels)
        names = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(keys, names)), **summary})
    return pd.DataFrame(out)


def _load(folder: Path):
    try:
        return results.read_predictions(folder)
    except (OSError, ValueError):
        return None  # a missing or damaged file: the run does not vote
