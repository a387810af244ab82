#!/usr/bin/env bash
# Installs vqcodec and what its commands, tests and recipes use. Idempotent; run from anywhere.
#   bash scripts/setup.sh          # python packages only
#   bash scripts/setup.sh --system # also the Debian tools (espeak-ng, mbrola voices, codec2, opus, sox,
#                                  chromium for the listening-report browser test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "--system" ]; then
  need=()
  for tool in espeak-ng mbrola c2enc opusenc sox chromium; do command -v "$tool" >/dev/null || need+=("$tool"); done
  for voice in us1 us2 en1 us3; do [ -e "/usr/share/mbrola/$voice/$voice" ] || need+=("mbrola-$voice"); done
  [ -d /usr/share/games/fortunes ] || need+=(fortunes)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages (missing: ${need[*]})"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    # mbrola lives in contrib, its voices in non-free (see DATA.md).
    if ! grep -rqs "non-free" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Components: main$/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources \
          | $SUDO tee /etc/apt/sources.list.d/contrib-nonfree.sources >/dev/null
      fi
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng mbrola mbrola-us1 mbrola-us2 \
      mbrola-en1 mbrola-us3 sox ffmpeg codec2 opus-tools fortune-mod fortunes bible-kjv wordnet-base \
      dict-devil wamerican chromium >/dev/null
  fi
fi

# torch first, and only if it is missing (a machine without network but with torch keeps working).
# Without an NVIDIA GPU, the CPU wheel from PyTorch's CPU index (~200 MB): PyPI's default Linux
# wheel bundles CUDA libraries (several GB) that such a machine never uses.
if ! $PY -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PY -m pip install -q "torch==2.13.0"
  else
    $PY -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
# editable_mode=compat: the clone's root goes on sys.path through a .pth file. The default mode
# installs an import hook that Python consults after sys.path, so running Python in the folder
# that holds a clone named vqcodec/ imported that folder as an empty namespace package instead.
$PY -m pip install -q -e '.[dev,eval,analysis]' --config-settings editable_mode=compat
# resemblyzer's own dependency webrtcvad no longer imports (pkg_resources); use the wheels fork.
$PY -c "import resemblyzer" 2>/dev/null || { $PY -m pip install -q webrtcvad-wheels && $PY -m pip install -q --no-deps resemblyzer; }
