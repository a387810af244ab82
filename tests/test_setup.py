"""Issue 11 items 9 and 10: the install script and importing from next to a clone."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_setup(tmp_path, with_gpu: bool) -> list[str]:
    """Run scripts/setup.sh with a stand-in python that has no torch and records every call."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "fakepython"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 1; fi\necho "$@" >> {log}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    smi = bin_dir / "nvidia-smi"
    if with_gpu:
        smi.write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
        smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    elif smi.exists():
        smi.unlink()
    import shutil

    if not (bin_dir / "dirname").exists():
        (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    env = {**os.environ, "PYTHON": str(fake), "PATH": str(bin_dir)}  # no real nvidia-smi in sight
    subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / "setup.sh")], check=True, env=env,
                   timeout=60, capture_output=True)
    return log.read_text().splitlines()


def test_setup_installs_the_cpu_torch_wheel_without_a_gpu(tmp_path):
    calls = _run_setup(tmp_path, with_gpu=False)
    torch_line = next(c for c in calls if "torch==" in c)
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line
    assert any("-e .[dev,eval,analysis]" in c and "editable_mode=compat" in c for c in calls)


def test_setup_installs_the_default_torch_wheel_with_a_gpu(tmp_path):
    calls = _run_setup(tmp_path, with_gpu=True)
    torch_line = next(c for c in calls if "torch==" in c)
    assert "--index-url" not in torch_line


def test_a_folder_named_vqcodec_next_to_python_does_not_shadow_the_package(tmp_path):
    """A clone is a folder named vqcodec/ (no __init__.py at its root); Python started in its parent
    must still import the installed package (setup.sh installs in editable_mode=compat)."""
    (tmp_path / "vqcodec" / "docs").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", "import vqcodec; print(vqcodec.__file__)"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("__init__.py"), out.stdout + out.stderr
