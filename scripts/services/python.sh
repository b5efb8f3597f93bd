#!/usr/bin/env bash
# The official Elasticsearch Python client, pinned, for the test of the
# `elasticsearch` source and the API's `_search` (tests/elasticsearch.rs):
# a client nobody here wrote. Installed with pip into its own directory under
# ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/python, used through PYTHONPATH.
#
#   up    installs elasticsearch==VERSION there when missing
#   down  nothing to stop
#   env   prints SLUICE_TEST_ES_PYTHONPATH
set -euo pipefail
version=9.5.1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sluice"
dir="$cache/python/es-$version"
case "${1:-}" in
  up)
    if [ ! -f "$dir/.installed" ]; then
      rm -rf "$dir"
      python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --no-warn-conflicts --root-user-action=ignore \
        --target "$dir" "elasticsearch==$version"
      touch "$dir/.installed"
    fi
    PYTHONPATH="$dir" python3 -c 'import elasticsearch; print("elasticsearch", elasticsearch.__versionstr__)'
    ;;
  down) ;;
  env) echo "export SLUICE_TEST_ES_PYTHONPATH=$dir" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
