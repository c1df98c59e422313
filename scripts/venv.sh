#!/usr/bin/env bash
# Prints the path of a ready virtual environment for this checkout, building it
# when missing. The venv lives outside the clone (torch makes it ~6.5 GB) and is
# keyed by a hash of requirements.txt, so every clone with the same pins shares it.
# pip, not uv or poetry: pip takes torch and torchvision from the machine's disk.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
key=$(cat "$root/requirements.txt" | sha256sum | cut -c1-16)
cache=${XMD_VENV_CACHE:-$HOME/.cache/xmd}
venv="$cache/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "building venv $venv (first run: about 2 minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  # pip's chatter goes to a log, shown only when the build fails.
  log="$cache/build-$key.log"
  if ! { "$venv/bin/pip" install --quiet --upgrade pip setuptools wheel \
         && "$venv/bin/pip" install --quiet -r "$root/requirements.txt"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "venv build failed; full log: $log" >&2
    exit 1
  fi
  touch "$venv/.complete"
fi
# The package itself: an editable install of *this* checkout (about 2 s), so the
# `xmd` command always runs the code next to it.
if [ ! -x "$venv/bin/xmd" ] || ! "$venv/bin/python" -I -c "import xmd_cli, sys; sys.exit(0 if xmd_cli.__file__.startswith('$root/') else 1)" 2>/dev/null; then
  # Its build chatter goes to a log; shown only when the install fails.
  "$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e "$root" >"$cache/editable.log" 2>&1 \
    || { cat "$cache/editable.log" >&2; exit 1; }
fi
echo "$venv"
