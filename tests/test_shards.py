"""``experiment run --shard K/N``: disjoint slices of one run folder, gathered by a final run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paramviz.errors import UserError
from paramviz.experiments import report, runner
from paramviz.experiments.registry import RunOptions, Shard

EXPERIMENT = "layer-robustness"


def run(run_dir: Path, shard: Shard | None) -> runner.Outcome:
    options = RunOptions(progress=False, shard=shard)
    (outcome,) = runner.run_experiments([EXPERIMENT], run_dir, quick=True, options=options)
    return outcome


def test_shards_split_the_cells_and_a_final_run_gathers_them(tmp_path: Path):
    first = run(tmp_path, Shard(1, 2))
    cells = first.computed + first.skipped
    assert first.computed == (cells + 1) // 2 and first.reused == 0
    partial = json.loads(first.metrics_path.read_text())
    assert partial["complete"] is False and partial["rows"] == []

    second = run(tmp_path, Shard(2, 2))
    assert second.computed == cells // 2 and second.reused == first.computed
    assert second.skipped == 0  # the first shard's cells were there when this one passed them

    page = report.render_report(tmp_path)  # the report shows every finished cell
    assert page.count('class="cell"') == cells

    final = run(tmp_path, None)
    assert (final.computed, final.reused, final.skipped) == (0, cells, 0)
    assert json.loads(final.metrics_path.read_text())["complete"] is True


def test_a_shard_is_k_of_n():
    assert [Shard(2, 3).owns(position) for position in range(6)] == [0, 1, 0, 0, 1, 0]
    assert Shard.parse("3/8") == Shard(3, 8)
    for bad in ("0/2", "3/2", "2", "a/b"):
        with pytest.raises(UserError, match="shard"):
            Shard.parse(bad)
