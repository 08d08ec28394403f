"""A population-based training sweep (`--search pbt`) read back from its members' folders.

Each member trained with its config's values until its first exploit, then with the values
its lineage.csv says it took after each one, so its schedule is known epoch by epoch. Its
weights are another matter: at an exploit after epoch k it took the state of the member it
copied, so the state it ends with was trained by a chain of members, the one it copied up to
k, its own values after (Ray Tune's replay follows the same chain). Those chains, merged, are
the lineage tree: a node is one member's stretch of epochs, a child the member that copied it.

The terminal shows the winner's chain and the tree of the states that reached the end; the
HTML report draws the schedules and the lineage (`draw_*` fill matplotlib axes: figures.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from dlrun import results
from dlrun.objectives import direction
from dlrun.report.terminal import HEADERS, fmt_metric


@dataclass
class Member:
    name: str
    initial: dict  # key -> value text, from its config
    events: list  # lineage.csv rows: epoch, copied_from, after.<key>

    def values_from(self, epoch: int) -> dict:
        """The values it trained epoch `epoch` with (its values change only after an exploit)."""
        taken = [e for e in self.events if e["epoch"] < epoch]
        return {k: taken[-1][f"after.{k}"] for k in self.initial} if taken else dict(self.initial)


@dataclass
class Stretch:
    """One member's state over epochs first..last, a node of the lineage tree."""

    member: str
    first: int
    last: int
    values: dict
    children: list = field(default_factory=list)  # stretches that copied this one's state


@dataclass
class Population:
    folder: Path
    keys: list
    members: dict  # name -> Member
    epochs: int
    metric: str
    winner: str
    score: float
    exploits: int

    def chain(self, name: str, upto: int | None = None) -> list[Stretch]:
        """The stretches that trained `name`'s state up to epoch `upto`, oldest first."""
        upto = self.epochs if upto is None else upto
        member = self.members[name]
        before = [e for e in member.events if e["epoch"] < upto]
        if not before:
            return [Stretch(name, 1, upto, member.values_from(1))]
        last = before[-1]
        inherited = self.chain(last["copied_from"], last["epoch"])
        return [*inherited, Stretch(name, last["epoch"] + 1, upto, member.values_from(last["epoch"] + 1))]

    def value_table(self, name: str) -> pd.DataFrame:
        """Epochs 1..E as rows, the member's own values as numbers (categories as text)."""
        member = self.members[name]
        rows = [member.values_from(epoch) for epoch in range(1, self.epochs + 1)]
        return _numbers(pd.DataFrame(rows, index=range(1, self.epochs + 1)))

    def winner_values(self) -> pd.DataFrame:
        """The values that trained the winner's final state, epoch by epoch, along its chain."""
        rows = {}
        for stretch in self.chain(self.winner):
            for epoch in range(stretch.first, stretch.last + 1):
                rows[epoch] = stretch.values
        return _numbers(pd.DataFrame.from_dict(rows, orient="index"))

    def extent(self, name: str, first: int) -> int:
        """The last epoch of `name`'s stretch from `first`: its next exploit, else the end."""
        later = [e["epoch"] for e in self.members[name].events if e["epoch"] >= first]
        return min(later, default=self.epochs)

    def tree(self) -> list[Stretch]:
        """The roots of the tree of states that reached the last epoch: every member's chain,
        merged where two share a stretch (keyed by member and first epoch)."""
        nodes: dict = {}
        roots: list = []
        for name in sorted(self.members):
            parent = None
            for stretch in self.chain(name):
                key = (stretch.member, stretch.first)
                node = nodes.get(key)
                if node is None:
                    node = nodes[key] = stretch
                    node.last = self.extent(stretch.member, stretch.first)
                    (parent.children if parent else roots).append(node)
                parent = node
        return roots


def populations(rows: pd.DataFrame) -> list[Population]:
    """The PBT sweeps among the report's rows (their sweep.yaml says mode pbt), each whole."""
    found = []
    for folder in sorted({Path(f).parent for f in rows.get("folder", [])}):
        record = results.read_sweep_record(folder)
        plan = (record or {}).get("plan", {})
        if plan.get("mode") != "pbt":
            continue
        members = rows[[Path(f).parent == folder for f in rows["folder"]]]
        population = _read(folder, plan, members)
        if population is not None:
            found.append(population)
    return found


def _metric(plan: dict, members: pd.DataFrame) -> str:
    recorded = plan.get("settings", {}).get("metric")
    if recorded:
        return recorded
    # folders from before the settings were recorded ranked by PBT's default
    accuracy = "best_val_accuracy" in members and members["best_val_accuracy"].notna().any()
    return "best_val_accuracy" if accuracy else "best_val_loss"


def _read(folder: Path, plan: dict, members: pd.DataFrame) -> Population | None:
    keys = list(plan.get("space", {}))
    read = {}
    for row in members.itertuples():
        run_dir = Path(row.folder)
        try:
            config = results.read_config(run_dir)
            initial = {key: _text(_select(config, key)) for key in keys}
            read[run_dir.name] = Member(run_dir.name, initial, results.read_lineage(run_dir))
        except (OSError, KeyError, ValueError):  # a member still being written: shown next time
            continue
    if len(read) < 2:
        return None
    metric = _metric(plan, members)
    scores = pd.to_numeric(members.set_index(members["folder"].map(lambda f: Path(f).name))[metric], "coerce")
    scores = scores[scores.index.isin(read)].dropna()
    if scores.empty:
        return None
    best = scores.idxmax() if direction(metric) == "maximize" else scores.idxmin()
    epochs = int(pd.to_numeric(members["epochs_run"], errors="coerce").max())
    exploits = sum(len(m.events) for m in read.values())
    return Population(folder, keys, read, epochs, metric, best, float(scores[best]), exploits)


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as numbers (to draw on a value axis); a categorical key stays text."""
    for column in frame:
        converted = pd.to_numeric(frame[column], errors="coerce")
        if converted.notna().all():
            frame[column] = converted
    return frame


def _select(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _text(value) -> str:
    """A value as lineage.csv writes it (repr of a float): the same text for the same value."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def short_value(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.3g}" if math.isfinite(number) and number != int(number) else str(text)


def _values_text(values: dict) -> str:
    return "  ".join(f"{key.rsplit('.', 1)[-1]} {short_value(v)}" for key, v in values.items())


def _epochs(stretch: Stretch) -> str:
    return f"{stretch.first}-{stretch.last}" if stretch.last > stretch.first else f"{stretch.first}"


def terminal_parts(population: Population) -> list:
    """The winner's chain as a table and the lineage tree, for the terminal (80 columns)."""
    shown_metric = HEADERS.get(population.metric, population.metric)
    score = fmt_metric(population.metric, population.score).strip()
    title = f"PBT winner {population.winner} ({shown_metric} {score}): its weights were trained by"
    chain = Table(box=None, pad_edge=False)
    for header in ("epochs", "member", *(k.rsplit(".", 1)[-1] for k in population.keys)):
        chain.add_column(header, justify="left" if header in ("epochs", "member") else "right")
    for stretch in population.chain(population.winner):
        chain.add_row(
            _epochs(stretch), stretch.member, *(short_value(stretch.values[k]) for k in population.keys)
        )
    members = len(population.members)
    tree = Tree(
        f"Lineage: {population.exploits} exploits among {members} members over {population.epochs} "
        f"epochs; the states that reached the end (* the winner's chain)"
    )
    on_chain = {(s.member, s.first) for s in population.chain(population.winner)}
    for root in population.tree():
        _grow(tree, root, on_chain, None)
    replay = f"replay the winner: dlrun train --replay {population.folder / population.winner}"
    return [Group(Text(title), chain, ""), Group(tree, replay)]


def _grow(tree: Tree, stretch: Stretch, on_chain: set, parent: Stretch | None) -> None:
    mark = "* " if (stretch.member, stretch.first) in on_chain else ""
    copied = f" (copied {parent.member} after {stretch.first - 1})" if parent else ""
    label = f"{mark}{stretch.member} {_epochs(stretch)}{copied}: {_values_text(stretch.values)}"
    branch = tree.add(label)
    for child in sorted(stretch.children, key=lambda s: (s.first, s.member)):
        _grow(branch, child, on_chain, stretch)


def draw_schedules(axes, population: Population, log_keys: set) -> None:
    """One panel per perturbed key: every member's value against epochs (thin steps), and the
    values that trained the winner's state along its chain (thick), the one to replay."""
    winner = population.winner_values()
    tables = {name: population.value_table(name) for name in sorted(population.members)}
    for axis, key in zip(axes, population.keys):
        for name, table in tables.items():
            axis.step(table.index, table[key], where="post", lw=0.8, alpha=0.45, color="grey")
        axis.step(
            winner.index, winner[key], where="post", lw=2.2, color="C3", label=f"{population.winner}'s chain"
        )
        axis.set_ylabel(key.rsplit(".", 1)[-1])
        if key in log_keys:
            axis.set_yscale("log")
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("epoch")


def draw_lineage(axis, population: Population) -> None:
    """Members as lanes, epochs across: each stretch of a member's own state a line along its
    lane (dotted where it died out, replaced by a copy), each exploit that reached the end an
    arrow from the copied lane to the copier's; the winner's chain in red."""
    lanes = {name: i for i, name in enumerate(sorted(population.members))}
    # the winner's chain holds a stretch up to the copy it was taken at: red to there, grey on
    on_chain = {(s.member, s.first): s.last for s in population.chain(population.winner)}

    def draw(stretch: Stretch, parent: Stretch | None) -> None:
        red_to = on_chain.get((stretch.member, stretch.first))
        colour, width = ("C3", 2.4) if red_to else ("grey", 1.0)
        y = lanes[stretch.member]
        axis.plot([stretch.first - 1, stretch.last], [y, y], color="grey", lw=1.0, solid_capstyle="butt")
        if red_to:
            axis.plot([stretch.first - 1, red_to], [y, y], color="C3", lw=2.4, solid_capstyle="butt")
        if parent is not None:
            at = stretch.first - 1
            axis.annotate(
                "",
                xy=(at, y),
                xytext=(at, lanes[parent.member]),
                arrowprops={"arrowstyle": "->", "color": colour, "lw": width * 0.6},
            )
        for child in stretch.children:
            draw(child, stretch)

    for name, member in population.members.items():  # every stretch, those that died out too
        for first in [1, *(e["epoch"] + 1 for e in member.events)]:
            last = population.extent(name, first)
            axis.plot([first - 1, last], [lanes[name]] * 2, ":", color="grey", lw=0.8)
    for root in population.tree():
        draw(root, None)
    axis.set_yticks(range(len(lanes)), list(lanes))
    axis.set_xlim(0, population.epochs)
    axis.set_xlabel("epoch")
    axis.invert_yaxis()
