"""ensemble.py: the two votes checked by hand on three members, and which runs form an ensemble."""

import numpy as np
import pandas as pd
import pytest

from dlrun import results
from dlrun.report.ensemble import ensembles, vote

LABELS = np.array([0, 1, 2, 0])
# [members, examples, classes]; each member's prediction (argmax) and whether it is right:
MEMBERS = np.array(
    [
        [[0.90, 0.05, 0.05], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.4, 0.5, 0.1]],  # 0 0 2 1 -> 2 of 4 right
        [[0.30, 0.60, 0.10], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]],  # 1 1 2 0 -> 3 of 4
        [[0.30, 0.60, 0.10], [0.3, 0.6, 0.1], [0.5, 0.3, 0.2], [0.3, 0.6, 0.1]],  # 1 1 0 1 -> 1 of 4
    ]
)


def test_the_votes_and_member_accuracies_match_a_hand_count():
    result = vote(MEMBERS, LABELS)
    assert result["members"] == 3
    assert result["member_mean"] == pytest.approx(0.5)  # (2 + 3 + 1) / 12
    assert (result["member_best"], result["member_worst"]) == (0.75, 0.25)
    # Mean probabilities per example: [0.50, 0.42, 0.08] -> 0 right, [0.30, 0.60, 0.10] -> 1 right,
    # [0.27, 0.23, 0.50] -> 2 right, [0.40, 0.47, 0.13] -> 1 wrong: 3 of 4.
    assert result["mean_probability_vote"] == 0.75
    # Predictions per example: (0, 1, 1) -> 1 wrong, (0, 1, 1) -> 1 right, (2, 2, 0) -> 2 right,
    # (1, 0, 1) -> 1 wrong: 2 of 4. One confident member outvotes two unsure ones only by probability.
    assert result["majority_vote"] == 0.5


@pytest.mark.parametrize("label, majority", [(1, 1.0), (2, 0.0)])
def test_a_tied_majority_goes_to_the_lowest_class_id(label, majority):
    members = np.array([[[0.1, 0.2, 0.7]], [[0.1, 0.7, 0.2]]])  # one votes 2, the other 1
    assert vote(members, np.array([label]))["majority_vote"] == majority


def _run(folder, probabilities, labels=LABELS):
    folder.mkdir(parents=True)
    np.savez(folder / results.PREDICTIONS_FILE, probabilities=probabilities, labels=labels)
    return str(folder)


def test_runs_differing_only_in_seed_vote_and_runs_that_cannot_vote_are_left_out(tmp_path):
    rows = pd.DataFrame(
        [
            {"lr": 0.1, "seed": 0, "folder": _run(tmp_path / "a0", MEMBERS[0])},
            {"lr": 0.1, "seed": 1, "folder": _run(tmp_path / "a1", MEMBERS[1])},
            {"lr": 0.1, "seed": 2, "folder": _run(tmp_path / "a2", MEMBERS[2])},
            {"lr": 0.01, "seed": 0, "folder": _run(tmp_path / "b0", MEMBERS[0])},
            {"lr": 0.01, "seed": 1, "folder": str(tmp_path / "b1-never-saved")},  # one member: no vote
            {"lr": 0.001, "seed": 0, "folder": _run(tmp_path / "c0", MEMBERS[0])},
            {
                "lr": 0.001,
                "seed": 1,
                "folder": _run(tmp_path / "c1", MEMBERS[1], LABELS[::-1]),
            },  # other test set
        ]
    )
    votes = ensembles(rows, ["lr", "seed"])
    assert votes.lr.tolist() == [0.1] and votes.members.tolist() == [3]
    assert votes.iloc[0].to_dict() == {"lr": 0.1, **vote(MEMBERS, LABELS)}
