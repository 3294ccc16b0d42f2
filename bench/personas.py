"""Accuracy of job title classification on a labelled evaluation set.

    .venv/bin/python bench/personas.py [--show-errors] [--data bench/data/persona_titles.csv]
        [--json PATH]

Runs ``classify_title`` with the bundled rules over every title of the evaluation set (a CSV
with the columns ``title,function,seniority,persona``, each title labelled by what it means
to a GTM team) and prints, per field, how many titles came out as labelled, and whether the
goal (at least 90% on function and on seniority) is met. ``--show-errors`` also lists each
misclassified title with what was expected, what came out and the rules that fired. Exit
status 1 when the goal is not met.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script from anywhere: the bench modules import each other from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import BenchResult, Goal, add_json_option  # noqa: E402
from gtm_orchestration.lib.crm_schema import portal_schema  # noqa: E402
from gtm_orchestration.lib.personas import (  # noqa: E402
    PersonaRules,
    TitleClassification,
    classify_title,
    default_persona_rules,
)

EVALUATION_SET = Path(__file__).resolve().parent / "data" / "persona_titles.csv"
FIELDS = ("function", "seniority", "persona")
# Persona follows from function and seniority, so the goal is set on those two.
GOALS = {"function": 0.90, "seniority": 0.90}
# What the benchmark must show; stated first and in the results (bench/suite.py reads it).
GOAL = "at least 90% of titles classified with their labelled function and seniority"


@dataclass(frozen=True)
class LabelledTitle:
    """A job title of the evaluation set and what it means: the expected classification."""

    title: str
    function: str
    seniority: str
    persona: str


@dataclass
class Evaluation:
    """How many titles came out as labelled, per field, and the titles that did not."""

    total: int = 0
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    errors: list[tuple[LabelledTitle, TitleClassification]] = field(default_factory=list)

    def accuracy(self, name: str) -> float:
        """The share of titles whose ``name`` field came out as labelled (0 when empty)."""
        return self.correct[name] / self.total if self.total else 0.0


def read_labelled_titles(
    path: Path = EVALUATION_SET, rules: PersonaRules | None = None
) -> list[LabelledTitle]:
    """The labelled titles of ``path``, checked against the CRM options and persona labels.

    Raises ValueError naming the file, the row, the field and the value when a label is not
    one of the CRM's ``gtm_function`` or ``gtm_seniority`` options or a persona of the rules.
    """
    properties = portal_schema().objects["contacts"].properties
    allowed = {
        "function": properties["gtm_function"].options,
        "seniority": properties["gtm_seniority"].options,
        "persona": sorted((rules or default_persona_rules()).persona_labels),
    }
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames != ["title", *FIELDS]:
            raise ValueError(
                f"{path}: expected the columns title,{','.join(FIELDS)} "
                f"(found {','.join(reader.fieldnames or [])})"
            )
        titles = []
        for row_number, row in enumerate(reader, start=2):
            for name, options in allowed.items():
                if row[name] not in options:
                    raise ValueError(
                        f"{path}: row {row_number}: {name}: expected one of "
                        f"{', '.join(options)} (found {row[name]!r})"
                    )
            titles.append(LabelledTitle(**row))
    return titles


def evaluate(titles: list[LabelledTitle], rules: PersonaRules | None = None) -> Evaluation:
    """Classify every title and count, per field, those that came out as labelled."""
    evaluation = Evaluation()
    for labelled in titles:
        got = classify_title(labelled.title, rules)
        evaluation.total += 1
        matches = [getattr(got, name) == getattr(labelled, name) for name in FIELDS]
        for name, match in zip(FIELDS, matches, strict=True):
            evaluation.correct[name] += match
        if not all(matches):
            evaluation.errors.append((labelled, got))
    return evaluation


def _labels(item: LabelledTitle | TitleClassification) -> str:
    return " / ".join(getattr(item, name) for name in FIELDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=EVALUATION_SET, help="labelled titles")
    parser.add_argument("--show-errors", action="store_true", help="list the misclassified titles")
    add_json_option(parser)
    args = parser.parse_args(argv)

    print(f"goal: {GOAL}")
    evaluation = evaluate(read_labelled_titles(args.data))
    print(f"evaluation set: {args.data} ({evaluation.total} titles)")
    for name in FIELDS:
        goal = GOALS.get(name)
        target = f"  goal {goal:.0%}" if goal is not None else ""
        print(
            f"{name:<10} {evaluation.correct[name]:>5}/{evaluation.total} "
            f"{evaluation.accuracy(name):7.1%}{target}"
        )

    if args.show_errors:
        print(f"\nmisclassified: {len(evaluation.errors)} titles (expected -> got, rule)")
        for labelled, got in evaluation.errors:
            print(f"{labelled.title}\n    {_labels(labelled)} -> {_labels(got)}  [{got.rule}]")

    result = BenchResult(
        "personas",
        GOAL,
        parameters={"titles": evaluation.total, "data": str(args.data)},
        goals=[
            Goal(
                f"at least {goal:.0%} of titles with the labelled {name}",
                f"{evaluation.accuracy(name):.1%}",
                evaluation.accuracy(name) >= goal,
            )
            for name, goal in GOALS.items()
        ],
        figures={f"{name}_accuracy": evaluation.accuracy(name) for name in FIELDS}
        | {"titles": evaluation.total, "misclassified": len(evaluation.errors)},
        summary=f"{evaluation.total:,} labelled titles: "
        + ", ".join(f"{name} {evaluation.accuracy(name):.1%}" for name in FIELDS),
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())
