#!/usr/bin/env bash
# Create the virtualenv, install the pinned requirements, create the output folders (from common/paths.py).
# Usage: ./setup.sh            set up only (and install Debian's dataset-fashion-mnist when root and apt-get allow)
#        ./setup.sh demo       set up, then reproduce the study on the bundled digits dataset (CPU minutes)
#        ./setup.sh test       set up, then run the test suite
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha1sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
.venv/bin/python -m common.paths --mkdirs > /dev/null
# Fashion-MNIST (--dataset fashion_mnist, --preset study) from Debian when this machine can install it; never fatal.
fashion=/usr/share/datasets/fashion-mnist
if [ ! -d "$fashion" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    { apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; } \
      > /dev/null 2>&1 || echo "setup.sh: could not install dataset-fashion-mnist; torchvision downloads Fashion-MNIST on first use instead" >&2
  else
    echo "setup.sh: for --dataset fashion_mnist offline, run 'sudo apt-get install dataset-fashion-mnist' (else torchvision downloads it on first use)" >&2
  fi
fi
case "${1:-}" in
  "") echo "setup done: activate with 'source .venv/bin/activate'" ;;
  demo) shift; exec .venv/bin/python reproduce.py --preset demo "$@" ;;
  test) shift; exec .venv/bin/python -m pytest -q "$@" ;;
  *) echo "setup.sh: unknown verb '$1' (use: demo, test, or nothing)" >&2; exit 2 ;;
esac
