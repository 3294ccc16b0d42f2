"""Throughput of the transform stage on a large lead file, against DuckDB's bare read of the
same file and a straightforward pandas implementation of the same rules.

    .venv/bin/python bench/transform.py [--n 1000000] [--seed 7] [--skip-pandas] [--json PATH]

Writes ``--n`` realistic leads (``bench/lead_generator.py``) as a CSV drop in a temporary
folder, then measures three parts, each in a fresh process of its own so that each reports
its own peak memory: DuckDB reading the file into a table and nothing else; the whole
transform stage a dropped file goes through (read with header and row validation,
``transform_leads``, CRM payloads of the leads and companies), as ``lib/dry_run.py`` chains
it; and ``bench/pandas_transform.py``. Both stage processes first run the run worker's
warm-up (``lib/warm_up.py``), as a run worker does before its run. Prints seconds, records
per second and peak memory, whether pandas and the stage made the same leads, companies and
payloads, and whether the goal is met: the stage within 5 times the bare read, at least 5
times faster than pandas, under 2 GiB peak memory, and the same outputs as pandas. Exit status
1 when a goal is not met.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script from anywhere: the bench modules import each other from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lead_generator import write_lead_file  # noqa: E402
from bench.results import BenchResult, Goal, add_json_option  # noqa: E402

GOAL_READ_RATIO = 5.0
GOAL_PANDAS_SPEEDUP = 5.0
GOAL_PEAK_MIB = 2048.0
# What the benchmark must show; stated first and in the results (bench/suite.py reads it).
GOAL = (
    "the transform stage within 5 x DuckDB's bare read of the same file, at least 5 x "
    "faster than pandas with the same outputs, under 2 GiB peak memory"
)
SOURCE = "leads"
OUTPUTS = ("leads", "companies", "contacts", "accounts")


@dataclass
class Part:
    """One measured part: its seconds, the seconds of its steps, memory and record counts."""

    seconds: float
    records: int
    peak_mib: float
    start_mib: float
    steps: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def _peak_mib() -> float:
    # The high-water mark of this process's memory: a fresh process per part makes it that
    # part's peak. Not getrusage's ru_maxrss, which keeps the parent's size from before the
    # child was started.
    return _status_kib("VmHWM") / 1024


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def bare_read(path: str) -> Part:
    """DuckDB reading the file into a table of text columns (rows with a field too many are
    skipped: DuckDB's reader refuses them otherwise)."""
    import duckdb

    con = duckdb.connect()
    start_mib = _rss_mib()
    started = time.perf_counter()
    con.execute(
        "CREATE TABLE lead_rows AS SELECT * FROM read_csv($path, header = true, "
        "all_varchar = true, ignore_errors = true)",
        {"path": path},
    )
    seconds = time.perf_counter() - started
    (rows,) = con.execute("SELECT count(*) FROM lead_rows").fetchall()[0]
    return Part(seconds, rows, _peak_mib(), start_mib)


def transform_stage(path: str, out_dir: str) -> Part:
    """The stage of a dropped file: read and validate, transform, CRM payloads."""
    import pyarrow as pa

    from gtm_orchestration.lib.batch import scratch_connection
    from gtm_orchestration.lib.crm_schema import payload_table
    from gtm_orchestration.lib.lead_files import modified_at, read_lead_file
    from gtm_orchestration.lib.mapping import load_registry
    from gtm_orchestration.lib.transform import transform_leads
    from gtm_orchestration.lib.warm_up import transform_sample_leads

    warm_up = _timed(transform_sample_leads)
    start_mib = _rss_mib()
    started = time.perf_counter()
    registry = load_registry()
    file = Path(path)
    parsed = read_lead_file(file, registry.source(SOURCE))
    read = time.perf_counter()
    rows = parsed.accepted
    provenance = {
        "source": pa.scalar(SOURCE),
        "source_file": pa.scalar(path),
        "landed_at": pa.scalar(modified_at(file.stat().st_mtime_ns), pa.timestamp("us", "UTC")),
        "mapping_version": pa.scalar(registry.version, pa.int32()),
    }
    for name, value in provenance.items():
        rows = rows.append_column(name, pa.repeat(value, rows.num_rows))
    con = scratch_connection()
    leads, companies = transform_leads(con, rows)
    transformed = time.perf_counter()
    contacts = payload_table(leads, registry.crm["contacts"], "contacts")
    accounts = payload_table(companies, registry.crm["companies"], "companies")
    ended = time.perf_counter()
    part = Part(
        ended - started,
        parsed.rows_total,
        _peak_mib(),
        start_mib,
        steps={
            "warm-up (before)": warm_up,
            "read + validate": read - started,
            "transform_leads": transformed - read,
            "CRM payloads": ended - transformed,
        },
        counts={
            "accepted": parsed.accepted.num_rows,
            "rejected": len(parsed.rejections),
            "leads": leads.num_rows,
            "companies": companies.num_rows,
        },
    )
    outputs = {"leads": leads, "companies": companies, "contacts": contacts, "accounts": accounts}
    _write(outputs, Path(out_dir) / "stage")
    con.close()
    return part


def pandas_version(path: str, out_dir: str) -> Part:
    """``bench/pandas_transform.py`` on the same file."""
    import pyarrow as pa

    from bench.pandas_transform import transform_file
    from gtm_orchestration.lib.lead_files import modified_at
    from gtm_orchestration.lib.mapping import load_registry
    from gtm_orchestration.lib.warm_up import transform_sample_leads

    warm_up = _timed(transform_sample_leads)
    start_mib = _rss_mib()
    started = time.perf_counter()
    registry = load_registry()
    file = Path(path)
    landed_at = modified_at(file.stat().st_mtime_ns)
    leads, companies, contacts, accounts = transform_file(file, SOURCE, registry, landed_at)
    seconds = time.perf_counter() - started
    part = Part(
        seconds,
        0,
        _peak_mib(),
        start_mib,
        steps={"warm-up (before)": warm_up},
        counts={"leads": len(leads), "companies": len(companies)},
    )
    wide = {
        "contacts": (contacts, registry.crm["contacts"], "contacts"),
        "accounts": (accounts, registry.crm["companies"], "companies"),
    }
    outputs: dict[str, pa.Table] = {
        "leads": pa.Table.from_pandas(leads, preserve_index=False),
        "companies": pa.Table.from_pandas(companies, preserve_index=False),
    }
    for name, (payloads, mapping, object_type) in wide.items():
        outputs[name] = _payload_columns(payloads, mapping, object_type)
    _write(outputs, Path(out_dir) / "pandas")
    return part


def _payload_columns(payloads: list[Any], mapping: dict[str, str], object_type: str) -> Any:
    """Payloads as ``payload_table`` lays them out: key, then a column per property."""
    import pyarrow as pa

    from gtm_orchestration.lib.crm_schema import field_ownership

    excluded = field_ownership().not_written(object_type)  # type: ignore[arg-type]
    columns = {"key": pa.array([p.key for p in payloads], pa.string())}
    for prop in mapping:
        if prop not in excluded:
            values = [p.properties.get(prop) for p in payloads]
            columns[prop] = pa.array(values, pa.string())
    return pa.table(columns)


def _write(outputs: dict[str, Any], folder: Path) -> None:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for name, table in outputs.items():
        pq.write_table(table, folder / f"{name}.parquet")


def _timed(step: Any) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _in_fresh_process(function: Any, *args: str) -> Part:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def compare_outputs(out_dir: Path) -> dict[str, tuple[int, int]]:
    """For each output, its rows and how many rows of the stage's and pandas' differ (rows
    of either that the other does not have, compared whole, every column)."""
    import duckdb

    con = duckdb.connect()
    differences = {}
    for name in OUTPUTS:
        stage, other = out_dir / "stage" / f"{name}.parquet", out_dir / "pandas" / f"{name}.parquet"
        (rows,) = con.execute(f"SELECT count(*) FROM '{stage}'").fetchall()[0]
        (differ,) = con.execute(
            f"SELECT (SELECT count(*) FROM (FROM '{stage}' EXCEPT ALL FROM '{other}')) "
            f"+ (SELECT count(*) FROM (FROM '{other}' EXCEPT ALL FROM '{stage}'))"
        ).fetchall()[0]
        differences[name] = (rows, differ)
    return differences


def _row(label: str, part: Part, records: int) -> str:
    per_second = records / part.seconds if part.seconds else float("nan")
    return (
        f"{label:<24} {part.seconds:9.2f} {per_second:12,.0f} {part.peak_mib:9.0f} "
        f"{part.start_mib:11.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="leads in the file")
    parser.add_argument("--seed", type=int, default=7, help="seed of the made-up leads")
    parser.add_argument("--skip-pandas", action="store_true", help="do not run pandas")
    add_json_option(parser)
    args = parser.parse_args(argv)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"goal: {GOAL}")
    with tempfile.TemporaryDirectory(prefix="gtm-bench-transform-") as scratch:
        out_dir = Path(scratch)
        path = out_dir / "leads.csv"
        written = _timed(lambda: write_lead_file(path, args.n, args.seed))
        size_mb = path.stat().st_size / 1e6
        print(f"file: {args.n:,} leads, {size_mb:.0f} MB, written in {written:.1f} s ({path})")

        bare = _in_fresh_process(bare_read, str(path))
        stage = _in_fresh_process(transform_stage, str(path), scratch)
        pandas = None if args.skip_pandas else _in_fresh_process(pandas_version, str(path), scratch)
        records = stage.records
        print()
        print(f"{'part':<24} {'seconds':>9} {'records/s':>12} {'peak MiB':>9} {'MiB before':>11}")
        print(_row("DuckDB bare read", bare, records))
        print(_row("transform stage", stage, records))
        for step, seconds in stage.steps.items():
            print(f"  {step:<22} {seconds:9.2f}")
        if pandas is not None:
            print(_row("pandas, same rules", pandas, records))
        print(
            f"records: {records:,} in the file, {stage.counts['accepted']:,} accepted, "
            f"{stage.counts['rejected']:,} rejected; {stage.counts['leads']:,} leads, "
            f"{stage.counts['companies']:,} companies"
        )

        differences: dict[str, tuple[int, int]] = {}
        if pandas is not None:
            differences = compare_outputs(out_dir)
            print(
                "outputs compared whole with pandas' (every row, every column): "
                + ", ".join(
                    f"{name} {rows:,} rows, " + ("same" if not differ else f"{differ:,} differ")
                    for name, (rows, differ) in differences.items()
                )
            )

    read_ratio = stage.seconds / bare.seconds
    goals = [
        Goal(
            f"stage within {GOAL_READ_RATIO:g} x the bare read",
            f"{read_ratio:.1f} x",
            read_ratio <= GOAL_READ_RATIO,
        ),
        Goal(
            f"stage peak memory under {GOAL_PEAK_MIB / 1024:g} GiB",
            f"{stage.peak_mib:,.0f} MiB",
            stage.peak_mib < GOAL_PEAK_MIB,
        ),
    ]
    figures = {
        "records": records,
        "file_mb": round(size_mb, 1),
        "stage_s": stage.seconds,
        "stage_records_per_s": records / stage.seconds,
        "stage_peak_mib": stage.peak_mib,
        "bare_read_s": bare.seconds,
        "read_ratio": read_ratio,
        "warm_up_s": stage.steps["warm-up (before)"],
        "read_validate_s": stage.steps["read + validate"],
        "transform_leads_s": stage.steps["transform_leads"],
        "payloads_s": stage.steps["CRM payloads"],
        "accepted": stage.counts["accepted"],
        "rejected": stage.counts["rejected"],
        "leads": stage.counts["leads"],
        "companies": stage.counts["companies"],
    }
    summary = (
        f"{records:,} records: stage {stage.seconds:.2f} s ({records / stage.seconds:,.0f} "
        f"records/s, peak {stage.peak_mib:,.0f} MiB; read + validate "
        f"{stage.steps['read + validate']:.2f} s, transform_leads "
        f"{stage.steps['transform_leads']:.2f} s, payloads {stage.steps['CRM payloads']:.2f} s); "
        f"bare read {bare.seconds:.2f} s ({read_ratio:.1f} x)"
    )
    if pandas is None:
        summary += "; pandas not run"
    else:
        speedup = pandas.seconds / stage.seconds
        differing = sum(differ for _, differ in differences.values())
        goals.insert(
            1,
            Goal(
                f"stage at least {GOAL_PANDAS_SPEEDUP:g} x faster than pandas",
                f"{speedup:.1f} x",
                speedup >= GOAL_PANDAS_SPEEDUP,
            ),
        )
        goals.append(
            Goal(
                "same leads, companies and payloads as pandas (every row, every column)",
                "same" if not differing else f"{differing:,} rows differ",
                not differing,
            )
        )
        figures |= {"pandas_s": pandas.seconds, "pandas_speedup": speedup, "rows_differ": differing}
        summary += f"; pandas {pandas.seconds:.1f} s (pandas / stage = {speedup:.1f}), " + (
            "same outputs" if not differing else f"{differing:,} output rows differ"
        )
    result = BenchResult(
        "transform",
        GOAL,
        parameters={"n": args.n, "seed": args.seed, "pandas": pandas is not None},
        goals=goals,
        figures=figures,
        summary=summary,
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())
