"""Benchmark results: one row per measurement, printed as a table and written as JSON."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class Measurement:
    """One figure, optionally beside its same-run reference and a target."""

    name: str
    value: float
    unit: str
    higher_is_better: bool = True
    reference_name: str | None = None
    reference_value: float | None = None
    target: float | None = None  # absolute target in `unit`
    target_ratio: float | None = None  # minimum value/reference ratio
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference_value:
            return self.value / self.reference_value
        return None

    @property
    def met(self) -> bool | None:
        checks: list[bool] = []
        if self.target is not None:
            checks.append(
                self.value >= self.target if self.higher_is_better else self.value <= self.target
            )
        if self.target_ratio is not None and self.ratio is not None:
            checks.append(self.ratio >= self.target_ratio)
        return all(checks) if checks else None


def _figure(value: float) -> str:
    """One decimal, or three significant digits below 1 (a 0.24-ms P95 is not "0.2")."""
    return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"


def _target(value: float) -> str:
    """Whole units, or two significant digits below 10 (a 0.28-ms target is not "0")."""
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2g}"


def format_table(rows: Sequence[Measurement]) -> str:
    header = ("benchmark", "value", "reference", "ratio", "target", "met")
    lines = [header]
    for m in rows:
        target = []
        if m.target is not None:
            target.append(("≥ " if m.higher_is_better else "≤ ") + f"{_target(m.target)} {m.unit}")
        if m.target_ratio is not None:
            target.append(f"≥ {m.target_ratio:.0%} of ref")
        lines.append(
            (
                m.name,
                f"{_figure(m.value)} {m.unit}",
                (
                    f"{_figure(m.reference_value)} ({m.reference_name})"
                    if m.reference_value
                    else "-"
                ),
                f"{m.ratio:.0%}" if m.ratio is not None else "-",
                ", ".join(target) or "-",
                {True: "yes", False: "NO", None: "-"}[m.met],
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(
    rows: Sequence[Measurement], path: Path, extra: Mapping[str, Any] | None = None
) -> None:
    doc = {
        "generated_at": datetime.now(UTC).isoformat(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        **(extra or {}),
        "results": [{**attrs.asdict(m), "ratio": m.ratio, "met": m.met} for m in rows],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
