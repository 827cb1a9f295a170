#!/usr/bin/env bash
# Install everything the test suite needs on a Debian machine, then run it all:
# lint (ruff), types (mypy), and pytest (unit, contract and end-to-end tests with
# real peers: SIPp, redis-server, headless Chromium).
#
# Uses the active Python environment (a virtualenv is recommended; see README).
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(redis-server sip-tester chromium chromium-driver espeak-ng sox tcpdump baresip-core kamailio)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"
"$PYTHON" -m ruff check .
echo "== mypy"
"$PYTHON" -m mypy rating settings ics accounts callcontrol ivr api 2>&1 | tail -n 20
"$PYTHON" -m mypy rating settings ics accounts callcontrol ivr api >/dev/null
echo "== pytest"
"$PYTHON" -m pytest "$@"
