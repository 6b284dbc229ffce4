#!/usr/bin/env bash
# ledgerflow quick start, on SQLite:
#  1. a new project: its migrations, rows in and out through the helpers;
#  2. the example pipelines in examples/: runs, the cache, explain, the ledger, dataflow.
#
#   bash examples/quickstart.sh [DIR]      (DIR defaults to ./demo; safe to run again)
#
# Uses the ledgerflow of ./.venv when there is one, else the one on PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -x .venv/bin/ledgerflow ]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
demo="${1:-demo}"
python="$(dirname "$(command -v ledgerflow)")/python"
[ -x "$python" ] || python=python3

step() {  # show a command the way you would type it, then run it
    local shown="" arg
    for arg in "$@"; do
        case "$arg" in *" "*) shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac
    done
    if [ -t 1 ]; then printf '\n\033[1m$%s\033[0m\n' "$shown"; else printf '\n$%s\n' "$shown"; fi
    "$@"
}

if [ -f "$demo/ledgerflow.yml" ]; then
    echo "Reusing the project in $demo"
else
    step ledgerflow init "$demo"
fi
cd "$demo"
step ledgerflow db upgrade                 # the ledger's tables and the plugin's (init wrote its migration)
step ledgerflow db check
step ledgerflow db current
step "$python" "$here/quickstart.py" .     # rows in and out through the helpers

# 2. The example pipelines (examples/ledgerflow.yml: a SQLite ledger next to it).
cd "$here"
step ledgerflow db upgrade
step ledgerflow run tuto.data_reduction.tasks:main --n 100 --multiplier 2
step ledgerflow run tuto.data_reduction.tasks:main --n 100 --multiplier 2   # from the cache
step ledgerflow explain tuto.data_reduction.tasks:main --n 100 --multiplier 3
step ledgerflow run genomics/pipeline.py:main                            # FASTQ -> BAM -> VCF
step ledgerflow runs --limit 5
step ledgerflow dataflow out/sample4.vcf                                 # how was it derived?
