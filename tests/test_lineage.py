"""The PBT report's reading of a population (dlrun/report/lineage.py) on a lineage worked out
by hand: four members over six epochs, exploits after epochs 2 and 4.

    after 2: C copies A, D copies B        after 4: A copies C, D copies C

So A ends with the state A trained for epochs 1-2, C for 3-4 and A itself for 5-6; D's own
and B-copied states died out; the tree of the states that reached the end is
A 1-4 -> C 3-6 -> {A 5-6, D 5-6}, and B 1-6 alone."""

from pathlib import Path

import pytest

from dlrun.report.lineage import Member, Population


def copy(epoch, source, lr):
    return {"epoch": epoch, "copied_from": source, "before.lr": "?", "after.lr": lr}


@pytest.fixture
def population():
    members = {
        "A": Member("A", {"lr": "0.1"}, [copy(4, "C", "0.02")]),
        "B": Member("B", {"lr": "0.3"}, []),
        "C": Member("C", {"lr": "0.5"}, [copy(2, "A", "0.12")]),
        "D": Member("D", {"lr": "0.7"}, [copy(2, "B", "0.36"), copy(4, "C", "0.1")]),
    }
    return Population(Path("sweep"), ["lr"], members, 6, "best_val_accuracy", "A", 0.9, 4)


def spans(stretches):
    return [(s.member, s.first, s.last) for s in stretches]


def test_a_members_weights_come_down_a_chain_of_copies(population):
    assert spans(population.chain("A")) == [("A", 1, 2), ("C", 3, 4), ("A", 5, 6)]
    assert spans(population.chain("B")) == [("B", 1, 6)]
    assert spans(population.chain("C")) == [("A", 1, 2), ("C", 3, 6)]
    assert spans(population.chain("D")) == [("A", 1, 2), ("C", 3, 4), ("D", 5, 6)]
    # the values that trained the winner's state: A's first, then C's after its copy, then A's new
    assert list(population.winner_values()["lr"]) == [0.1, 0.1, 0.12, 0.12, 0.02, 0.02]


def test_a_members_own_values_change_only_after_its_exploits(population):
    assert list(population.value_table("D")["lr"]) == [0.7, 0.7, 0.36, 0.36, 0.1, 0.1]
    assert population.extent("D", 3) == 4 and population.extent("B", 1) == 6


def test_the_tree_holds_the_states_that_reached_the_end_each_once(population):
    def walk(node, depth=0):
        yield depth, (node.member, node.first, node.last)
        for child in node.children:
            yield from walk(child, depth + 1)

    nodes = [entry for root in population.tree() for entry in walk(root)]
    assert nodes == [
        (0, ("A", 1, 4)),  # A's first state lived to epoch 4, copied by C after 2
        (1, ("C", 3, 6)),
        (2, ("A", 5, 6)),
        (2, ("D", 5, 6)),
        (0, ("B", 1, 6)),
    ]
    # D's states of epochs 1-2 and 3-4 (B's copy) were replaced: neither is in the tree
    assert ("D", 1, 2) not in [n for _, n in nodes] and ("D", 3, 4) not in [n for _, n in nodes]
