#!/bin/sh
# The fidelity check (scripts/fidelity.py) with Debian's python3: CPython's own test
# modules inside pyhost against plain python3. Arguments pass through, e.g. --fast.
exec /usr/bin/python3 "$(dirname "$0")/fidelity.py" "$@"
