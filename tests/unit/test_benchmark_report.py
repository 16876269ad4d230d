"""The benchmark table's spread column: what it judges and when it calls a figure unstable."""

from __future__ import annotations

from benchmarks.harness import Row, Target
from benchmarks.report import spread, table


def test_a_ratio_target_judges_the_ratio_of_each_round() -> None:
    """Values and baselines measured round by round give per-round ratios, not raw values."""
    row = Row(
        "cpu",
        "CPU per image",
        130.0,
        "ms",
        baseline=100.0,
        target=Target("<=", 1.3, on="ratio", text="≤ 1.3×"),
        rounds=[120.0, 130.0, 150.0],
        baseline_rounds=[100.0, 100.0, 125.0],
    )

    assert [1.2, 1.3, 1.2] == row.judged_rounds
    assert "1.20–1.30×, 3 rounds (±4.2%)" == spread(row)
    assert not row.unstable


def test_rounds_further_apart_than_a_tenth_are_marked_unstable() -> None:
    """A value that moves 25% between rounds is flagged in the table, whatever its target."""
    row = Row("throughput", "img/s", 7.0, "img/s", rounds=[6.0, 7.0, 7.75])

    assert row.unstable
    assert "6.00–7.75, 3 rounds (±12.5%), **unstable**" == spread(row)
    assert "| 6.00–7.75, 3 rounds (±12.5%), **unstable** |" in table([row])


def test_a_figure_measured_once_says_so() -> None:
    """One round has no spread to show; no rounds at all shows a dash."""
    once = Row("idle", "idle CPU", 0.2, "%", rounds=[0.2])
    never = Row("idle", "idle memory", 80.0, "MiB")

    assert ("1 round", None) == (spread(once), once.spread)
    assert "—" == spread(never)
