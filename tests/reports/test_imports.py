"""plotly loads only inside kvsim.reports: the CLI, its report module and the simulator never pull it in."""

import subprocess
import sys

CHECK = """
import sys
from click.testing import CliRunner
from kvsim.cli import main
assert CliRunner().invoke(main, ["--help"]).exit_code == 0
import kvsim.cli.report, kvsim.cli.simulate, kvsim.simulator.run
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("plotly", "torch", "triton"))
print(",".join(loaded))
"""


def test_cli_and_simulator_import_no_plotly_torch_or_triton():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_importing_kvsim_reports_loads_plotly_but_not_torch():
    check = "import sys, kvsim.reports; print('plotly' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "False"], result.stderr
