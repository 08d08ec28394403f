"""`dlrun export`: put run folders into the trackers people already use.

Reads run folders only through `dlrun.results` and `dlrun.report.build` (what varies, the
diagnosis), like the report. Exporting the same folders again updates what is there: it never
adds a second copy of a run. This file only says where things are.

    trackers.py      `export()`, which the command calls: the tracker, its extra, the call
    runs.py          the runs to export (one report over them), their names, the hyperparameters
                     that vary as typed values
    tensorboard.py   event files: per-epoch scalars, gradient statistics, HParams plugin data
    mlflow.py        one MLflow run per run folder, a sweep as a parent run with its trials
    live.py          `logger=`: a thread that follows the run folders as they train and writes
                     them through the two modules above (their Live* classes)
"""
