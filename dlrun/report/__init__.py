"""`dlrun report`: compare finished runs, say how each one trained, and show it.

Reads run folders only through `dlrun.results` (the run-folder contract) and never imports JAX,
so a report over thousands of folders stays quick. Import the module you need; this file only
says where things are.

    build.py       run folders -> one row per run (settings that vary, headline numbers,
                   diagnosis); filter, sort, group by a setting
    settings.py    the settings shared by every run that are worth showing (not the defaults)
    options.py     the report command's options, checked before any folder is read
    diagnose.py    the rules that label one run's curves (diverged, overfitting, ...), with
                   evidence and advice (pure numpy/pandas); thresholds.py: their numbers
    flags.py       the gradient and unit flags beside the label; curves.py: the curves as arrays
    terminal.py    the table that fits the terminal's width (whole values, a legend line)
    render.py      the rows as csv, markdown, json or latex, and the terminal's parts
    plots.py       learning curves and sensitivity plots as PNG files (matplotlib)
    search.py      a search's best value so far against trials and trial-epochs (pandas)
    html.py        the HTML report: one offline page, from what was run to each run's curves
    figures.py     its figures as inline SVG (matplotlib): sensitivity, overlay, per-run grid
    ensemble.py    runs that differ only in their seed, voting on the test set (numpy)
    live.py        a run or sweep folder followed while it trains, read only where it changed,
                   and whether it has ended; live_view.py: the watch's screen (pure);
                   watch.py: `dlrun watch`, its refresh loop and keys
"""
