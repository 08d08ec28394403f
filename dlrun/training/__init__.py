"""Training a group of trials (a lone run is a group of one) into run folders.

    step.py       the pure, jitted training step, epoch and evaluation: no I/O
    group.py      a group of trials: data on the device, the compiled epoch, the epoch loop
    compaction.py which trials stay stacked once half a group stopped training (pruning)
    trial.py      one trial's bookkeeping: curves, best epoch, checkpoints, summary
    hparams.py    which hyperparameters may differ inside a group, and how each reaches the state
    optim.py      optimizers and lr schedules (Optax), keyed by config name
    losses.py     losses keyed by config name
    callbacks.py  hooks into the epoch loop: early stopping, progress, pruning
    progress.py   the rich progress bars and the closing summary table
    resume.py     what `dlrun train` does with a folder that already holds a run
"""
