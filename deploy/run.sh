#!/bin/sh
# run.sh BINDIR: placeholder until certprovd lands (issue 3): initialises the embedded store.
set -eu
echo "certprovd is not built yet (see the engine issue)" >&2
exit 1
