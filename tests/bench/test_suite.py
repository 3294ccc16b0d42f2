"""``make bench`` as one suite: its table shows what each benchmark reported, failures too.

The personas benchmark is the one quick enough to run here; the suite treats every
benchmark the same way (a process of its own, its ``--json`` report, its exit status).
"""

from pathlib import Path

from bench import suite

README = """# Project

## Benchmarks

How to run them.

{begin}
| benchmark | figure | goal | met |
|---|---|---|---|
| old | old figures | old goal | yes |

{end}

What the figures mean.
"""


def _readme(tmp_path: Path) -> Path:
    path = tmp_path / "README.md"
    path.write_text(README.format(begin=suite.BEGIN_MARKER, end=suite.END_MARKER))
    return path


def _rows(markdown: str) -> dict[str, list[str]]:
    """The results table's rows by benchmark, each as its cells."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] != "benchmark":
            rows[cells[0]] = cells
    return rows


def test_a_met_goal_is_written_to_the_results_and_between_the_readme_markers(tmp_path):
    readme, out = _readme(tmp_path), tmp_path / "RESULTS.md"

    status = suite.main(
        ["--only", "personas", "--out", str(out), "--readme", str(readme)]
        + ["--logs", str(tmp_path / "logs")]
    )

    assert status == 0
    results = out.read_text()
    name, command, figures, goal, met = _rows(results)["personas"]
    assert command == "`bench/personas.py`"
    assert "labelled titles: function" in figures and "seniority" in figures
    assert goal == "at least 90% of titles classified with their labelled function and seniority"
    assert met == "yes"
    # The machine heads the table, and the run says it left benchmarks out.
    assert "CPU: " in results and "Python: " in results and "Dagster 1." in results
    assert "not run this time: transform, load, latency, spike" in results
    # The README keeps everything outside the markers; inside, the new table replaces the old.
    updated = readme.read_text()
    assert "old figures" not in updated
    assert _rows(updated)["personas"][4] == "yes"
    before, _, rest = updated.partition(suite.BEGIN_MARKER)
    _, _, after = rest.partition(suite.END_MARKER)
    assert before == "# Project\n\n## Benchmarks\n\nHow to run them.\n\n"
    assert after == "\n\nWhat the figures mean.\n"
    assert (tmp_path / "logs" / "personas.json").exists()


def test_a_benchmark_that_crashes_is_a_row_saying_so(tmp_path):
    out = tmp_path / "RESULTS.md"
    missing = tmp_path / "no-such-titles.csv"

    status = suite.main(
        ["--only", "personas", "--set", f"personas=--data {missing}", "--out", str(out)]
        + ["--logs", str(tmp_path / "logs")]
    )

    assert status == 1
    results = out.read_text()
    _, command, figures, goal, met = _rows(results)["personas"]
    assert command == f"`bench/personas.py --data {missing}`"
    assert figures.startswith("**error**: exited with status 1")
    assert "FileNotFoundError" in figures
    # The goal is still stated, read from the script, and the sizes are said to differ.
    assert goal.startswith("at least 90% of titles")
    assert met == "**error**"
    assert "**not the goal sizes** for personas" in results


def test_a_missed_goal_is_a_no_with_what_was_measured(tmp_path):
    # Two titles labelled against what they mean: the rules cannot reach 90% on them.
    mislabelled = tmp_path / "titles.csv"
    mislabelled.write_text(
        "title,function,seniority,persona\n"
        "CMO,finance,individual_contributor,Marketing Leader\n"
        "Chief Marketing Officer,legal,manager,Marketing Leader\n"
    )
    out = tmp_path / "RESULTS.md"

    status = suite.main(
        ["--only", "personas", "--set", f"personas=--data {mislabelled}", "--out", str(out)]
        + ["--logs", str(tmp_path / "logs")]
    )

    assert status == 1
    _, _, figures, _, met = _rows(out.read_text())["personas"]
    assert figures.startswith("2 labelled titles: function 0.0%, seniority 0.0%")
    assert met == (
        "**no**, not at the goal size: at least 90% of titles with the labelled function "
        "(0.0%); at least 90% of titles with the labelled seniority (0.0%)"
    )
