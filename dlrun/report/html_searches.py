"""The HTML report's sections about a search as a whole, over all its trials: its progress
(random and adaptive searches), its Pareto front (several metrics) and its population (PBT:
the schedules and the lineage)."""

from __future__ import annotations

import pandas as pd

from dlrun.report import figures, lineage, pareto, search
from dlrun.report.html_parts import escape as _e
from dlrun.report.html_parts import figure as _figure
from dlrun.report.html_parts import section as _section
from dlrun.text import plural


def search_section(rows: pd.DataFrame, sweeps: list) -> str:
    """For a random or adaptive search over all its trials: the best so far against trials and
    trial-epochs (report/search.py); nothing for a grid or plain runs."""
    found = search.progress(rows, sweeps)
    if found is None:
        return ""
    kind, metric, series = found
    svg = figures.search_svg(series, metric, f"{kind} search: the best so far")
    caption = (
        f"The best {metric} so far over {plural(len(series), 'trial')} in the order they "
        f"started, and over the {int(series['trial_epochs'].iloc[-1])} trial-epochs they "
        "ran (a pruned trial counts the epochs it ran); a dot per trial."
    )
    return _section("search", "Search progress", _figure(svg, caption))


def pareto_section(rows: pd.DataFrame, sweeps: list) -> str:
    """For a search of several metrics: every finished trial against the first two, the Pareto
    front highlighted (report/pareto.py); nothing otherwise."""
    found = pareto.front(rows, sweeps)
    if found is None:
        return ""
    columns, trials = found
    count = int(trials["on_front"].sum())
    svg = figures.pareto_svg(columns, trials, f"Pareto front ({pareto.describe(columns)})")
    caption = (
        f"{plural(count, 'trial')} of {len(trials)} finished on the Pareto front: no other trial is "
        f"as good on every metric and better on one ({pareto.describe(columns)}); a dot per trial."
    )
    return _section("pareto", "Pareto front", _figure(svg, caption))


def population_sections(rows: pd.DataFrame) -> str:
    """For each PBT sweep: every member's values against epochs with the winner's chain
    highlighted, and who copied whom (report/lineage.py); nothing otherwise."""
    parts = []
    for found in lineage.populations(rows):
        schedules, tree = figures.population_svgs(found)
        chain = " then ".join(f"{s.member} (epochs {s.first}-{s.last})" for s in found.chain(found.winner))
        body = _figure(
            schedules,
            f"The values of {plural(len(found.members), 'member')} against epochs (grey), and in red "
            f"the values that trained the winner {found.winner}'s weights: {chain}. "
            f"`dlrun train --replay {found.folder / found.winner}` retrains that schedule from scratch.",
        ) + _figure(
            tree,
            f"Lineage: {plural(found.exploits, 'exploit')}, each an arrow from the member copied to the "
            "one that copied its weights after that epoch, for the states that reached the last epoch "
            "(solid; dotted: a state replaced by a copy); the winner's chain in red.",
        )
        parts.append(_section("population", f"Population ({_e(found.folder.name)})", body))
    return "".join(parts)
