#!/bin/sh
# run-python-tests.sh - the Python client's unittest suite, against the
# server binary named by P2P_SERVER.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
PYTHONPATH="$root/src/client/python${PYTHONPATH:+:$PYTHONPATH}" \
    exec "${PYTHON:-python3}" -m unittest discover -s test/python -t test/python -v
