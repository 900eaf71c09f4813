"""Every notebook in colab/ runs top to bottom (with the `tiny` preset)."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "colab", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("VGAN_JAX_NOTEBOOK_PRESET", "tiny")
    monkeypatch.setenv("VGAN_JAX_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
    monkeypatch.setenv("VGAN_JAX_NOTEBOOK_DATA_DIR", data_dir)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert os.path.exists(tmp_path / "run" / "samples.gif")
    assert os.path.exists(tmp_path / "run" / "interpolation.gif")
