"""Training a group of trials (a lone run is a group of one) into run folders.

    step.py       the pure, jitted training step, epoch and evaluation: no I/O
    group.py      a group of trials: data on the device, the epoch loop, compaction, finishing
    program.py    the compiled half of a group: its program, the vmapped epoch and evaluations
    placement.py  where a group's arrays live: the trial axis sharded over the local devices
    side_by_side.py  a CPU group's one-trial passes run a core each, from threads
    writes.py     a group's trial folders written while the next epoch trains
    transfer.py   init_from (which layers load) and freezing what model.trainable names

The components it trains with sit below it: dlrun/optim.py (optimizers and lr schedules),
dlrun/models/losses.py and dlrun/models/trainable.py (which layers train), so that config
checks read them without reaching up into the engine.
    compaction.py which trials stay stacked once half a group stopped training (pruning)
    trial.py      one trial's bookkeeping: curves, best epoch, checkpoints, summary
    hparams.py    which hyperparameters may differ inside a group, and how each reaches the state
    callbacks.py  hooks into the epoch loop: early stopping, progress, pruning
    progress.py   the rich progress bars and the closing summary table
    resume.py     what `dlrun train` does with a folder that already holds a run
"""
