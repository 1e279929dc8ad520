"""A serving worker freezes what start-up left and collects its young generation less often
(gc_tuning.py); checked in a process of its own, so the test process keeps Python's defaults."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from tests.test_packaging import PYTHONPATH, ROOT


def test_tune_for_serving_freezes_start_up_and_raises_the_young_threshold() -> None:
    code = textwrap.dedent("""
        import gc
        from aigw_gateway.gc_tuning import YOUNG_THRESHOLD, tune_for_serving
        from aigw_gateway.app import create_app
        from aigw_gateway.settings import Settings
        create_app(Settings(files=("x",)))
        before = gc.get_freeze_count()
        tune_for_serving()
        print(before, gc.get_freeze_count() > 50_000, gc.get_threshold()[0] == YOUNG_THRESHOLD)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True", "True"]
    assert gc.get_freeze_count() == 0  # the test process itself is left alone
