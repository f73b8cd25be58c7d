#!/bin/sh
# Installs the Debian packages given as arguments if any is missing:
# directly as root, through sudo otherwise, or prints the apt-get line.
set -e
missing=""
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
line="apt-get install -y --no-install-recommends$missing"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "hive: missing packages:$missing (no apt-get here: install them with your package manager)" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    echo "hive: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && $line
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "hive: installing$missing (sudo)"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive $line
else
    echo "hive: missing packages. Run as root:" >&2
    echo "  apt-get update && $line" >&2
    exit 1
fi
