"""What a benchmark measured, stated one way by every script: its goals, whether each was met,
its figures for people and for ``bench/suite.py``.

Each script ends with ``BenchResult.report()``, which prints one line per goal and the verdict
(``goal: ...: met`` or ``NOT met``), writes the result as JSON when the script was given
``--json PATH`` and returns the exit status: 0 when every goal was met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Figure = float | int | str | bool | None


@dataclass(frozen=True)
class Goal:
    """One goal of a benchmark: what is asked, what was measured against it, and the verdict."""

    goal: str
    measured: str
    met: bool


@dataclass
class BenchResult:
    """The outcome of one benchmark run.

    ``goal`` is the benchmark's goal in a sentence, ``goals`` its parts as measured;
    ``summary`` is the figures as a person reads them (one line, for the results table);
    ``figures`` the same numbers keyed by name, for machines; ``parameters`` the sizes and
    options the run used.
    """

    benchmark: str
    goal: str
    parameters: dict[str, Figure]
    goals: list[Goal] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    summary: str = ""

    @property
    def met(self) -> bool:
        """True when there are goals and every one was met."""
        return bool(self.goals) and all(goal.met for goal in self.goals)

    def as_json(self) -> dict[str, Any]:
        """The result as a JSON-ready mapping (NaN and infinities become null)."""
        return {
            "benchmark": self.benchmark,
            "command": shlex.join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
            "goal": self.goal,
            "parameters": _finite(self.parameters),
            "figures": _finite(self.figures),
            "summary": self.summary,
            "goals": [asdict(goal) for goal in self.goals],
            "met": self.met,
        }

    def report(self, json_path: Path | None) -> int:
        """Print the goals and the verdict, write the JSON to ``json_path`` if given, and
        return the exit status: 0 if every goal was met, else 1."""
        print(f"\ngoal: {self.goal}")
        for goal in self.goals:
            print(f"  {goal.goal}: {goal.measured}: {'met' if goal.met else 'NOT met'}")
        print(f"{self.benchmark}: goal {'met' if self.met else 'NOT met'}")
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
        return 0 if self.met else 1


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The ``--json PATH`` option every benchmark takes."""
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the figures and goals as JSON here"
    )


def _finite(values: dict[str, Figure]) -> dict[str, Figure]:
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in values.items()
    }
