"""`dchag` imports only the stage its command line names: a stage that needs no torch
starts without it (a second or more of start-up, paid by every `prep` of a batch job)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dchag_cli.root import STAGES

RUN = """
import sys
sys.argv = ["dchag", *sys.argv[1:]]
from dchag_cli.entry import main
try:
    main()
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""


def _imports_torch(*args: str) -> bool:
    done = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True,
                          timeout=120)
    return "torch imported: True" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["model", "info", "--help"],
                                  ["prep", "era5", "--help"], ["sample", "era5", "--help"],
                                  ["show", "--help"], ["channels"]])
def test_stages_without_torch_start_without_it(args):
    assert not _imports_torch(*args)


def test_a_stage_that_needs_torch_imports_it_and_the_root_lists_every_stage():
    assert _imports_torch("plan", "--preset", "tiny", "--channels", "16", "--img", "16x16",
                          "--gpus", "2", "--gpu", "a100-40gb", "--no-cache",
                          "--budget-plans", "2", "--out", "/dev/null")
    done = subprocess.run([sys.executable, "-m", "dchag_cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert all(name in done.stdout for name in STAGES)
