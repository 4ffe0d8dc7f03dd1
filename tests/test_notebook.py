"""docs/example.ipynb runs from top to bottom on the twin (nbclient, a real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parents[1] / "docs" / "example.ipynb"


def test_the_example_notebook_runs_and_generates_calibrated_images(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []))
    assert "(4, 32, 32) float32" in outputs
    assert "complete 4 frames" in outputs
    assert "alignment-bench" in outputs and "RunFileError" in outputs
    assert (tmp_path / "notebook-run" / "run.h5").is_file()
    assert (tmp_path / "notebook-run-calibrated" / "contact_sheet.png").is_file()
