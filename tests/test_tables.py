"""What `dlrun sweep` prints: the plan's table and the best trials."""

import pandas as pd

from dlrun.sweep.plan import make_plan
from dlrun.sweep.tables import best_table, plan_table


def test_plan_table_title_counts_in_the_singular_for_one():
    assert plan_table(make_plan(["data=xor"])).title == "1 trial (grid) in 1 group = 1 compiled program"
    assert plan_table(make_plan(["data=xor", "lr=0.1,0.01", "batch_size=32,64"])).title == (
        "4 trials (grid) in 2 groups = 2 compiled programs"
    )


def test_plan_table_counts_the_updates_of_each_group():
    plan = make_plan(
        ["data=xor", "data.n_samples=1000", "data.val_size=200", "batch_size=32", "epochs=3", "lr=0.1,0.01"]
    )
    table = plan_table(plan)
    # 2 trials x 3 epochs x (800 // 32 = 25 steps)
    assert list(table.columns[-1].cells) == ["150"]
    assert "cost: 6 trial-epochs" in table.caption


def test_best_table_ranks_by_accuracy_and_leaves_out_unfinished_trials():
    plan = make_plan(["data=xor", "lr=0.1,0.01,0.001"])
    index = pd.DataFrame(
        {
            "trial": ["trial-000", "trial-001", "trial-002"],
            "lr": [0.1, 0.01, 0.001],
            "status": ["completed", "diverged", "pending"],
            "epochs_run": [5, 2, None],
            "best_val_loss": [0.3, 0.9, None],
            "best_val_accuracy": [0.8, 0.95, None],
            "test_accuracy": [0.79, 0.9, None],
        }
    )
    table = best_table(index, plan, width=80)
    assert table.title == "best 2 of 3 trials (by best_val_accuracy), 1 diverged, 1 completed"
    assert list(table.columns[0].cells) == ["001", "000"]  # the report's run ids
    assert list(table.columns[-1].cells) == ["90.0%", "79.0%"]  # the report's percentages
