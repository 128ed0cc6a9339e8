"""The documentation's examples run and say what they claim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_new_game_page_runs_and_solvers_agree(capsys):
    namespace = {}
    exec(compile(python_blocks(ROOT / "docs" / "new_game.md")[0], "new_game.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert float(namespace["result"].metrics["exploitability"][-1]) < 1e-6
    gap = float(re.search(r"max \|pi_OMD - pi_FP\| ([0-9.e-]+)", out).group(1))
    assert gap < 1e-3


def test_readme_example_runs():
    namespace = {}
    exec(compile(python_blocks(ROOT / "README.md")[0], "README.md", "exec"), namespace)
    assert namespace["result"].iterations == 200


def test_nac_page_example_runs():
    namespace = {}
    exec(compile(python_blocks(ROOT / "docs" / "nac.md")[0], "nac.md", "exec"), namespace)
    assert namespace["exact"].metrics["exploitability"][-1] < 1e-6
    assert namespace["online"].metrics["exploitability"][:, -1].max() < 1e-2
    rbf = namespace["rbf"].metrics
    assert rbf["projection_error"][-1] > 0  # 5 RBF centres cannot represent Q exactly
