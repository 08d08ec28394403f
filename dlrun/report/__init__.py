"""`dlrun report`: compare finished runs, say how each one trained, and show it.

Reads run folders only through `dlrun.results` (the run-folder contract) and never imports JAX,
so a report over thousands of folders stays quick. Import the module you need; this file only
says where things are.

    build.py       run folders -> one row per run (settings that vary, headline numbers,
                   diagnosis); filter, sort, group by a setting
    diagnose.py    the rules that label one run's curves (diverged, overfitting, ...) and the
                   gradient and unit flags, with evidence and advice (pure pandas)
    render.py      the rows as a terminal table, csv, markdown, json or latex (html: html.py)
    plots.py       learning curves and sensitivity plots as PNG files (matplotlib)
    html.py        the HTML report: one offline page, from what was run to each run's curves
    figures.py     its figures as inline SVG (matplotlib): sensitivity, overlay, per-run grid
    ensemble.py    runs that differ only in their seed, voting on the test set (numpy)
"""
