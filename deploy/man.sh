#!/bin/sh
# man.sh PROGRAM SECTION SUMMARY...: prints a manual page for PROGRAM (a built program, run with
# --help) on stdout: its --help text as the description, README.md as the reference. `make
# install` writes one per program, so that `man certprovd` says what `certprovd --help` says.
set -eu
prog=$1
sect=$2
shift 2
summary="$*"
name=$(basename "$prog")
help=$("$prog" --help)
upper=$(printf '%s' "$name" | tr 'a-z-' 'A-Z-')
printf '.TH %s %s "" "certprov" "certprov"\n' "$upper" "$sect"
printf '.SH NAME\n%s \\- %s\n' "$(printf '%s' "$name" | sed 's/-/\\-/g')" "$summary"
printf '.SH DESCRIPTION\nThe text of \\fB%s \\-\\-help\\fR:\n.PP\n.nf\n' "$name"
# roff: a backslash is \e, a leading dot or quote is escaped with \&, hyphens stay hyphens.
printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'
printf '.fi\n.SH SEE ALSO\n'
printf '/usr/share/doc/certprov/README.md (every configuration key, endpoint and error Code),\n'
printf '.BR certprovd (8),\n.BR certprovctl (1),\n.BR certprov\\-probe (1),\n.BR certprov\\-bench (1)\n'
