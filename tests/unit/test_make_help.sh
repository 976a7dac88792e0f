#!/usr/bin/env bash
# tests/unit/test_make_help.sh: every target of the Makefile (each rule of a plain name, and each
# .PHONY name) has a `## ` description, and `make help` lists it on one line of at most 80
# columns. Prints "ok NAME" / "not ok NAME" lines (tests/run-unit.sh counts them).
set -u
cd "$(dirname "$0")/../.." || exit 1
status=0
ok() { echo "ok $1"; }
not_ok() {
	echo "not ok $1${2:+: $2}"
	status=1
}

# Targets: rule lines "name [name...]:" (not variable assignments, not $(BUILD)/... paths),
# plus the .PHONY list (joined over its continuation lines).
rules=$(sed -n 's/^\([a-zA-Z][a-zA-Z0-9_ -]*\):\([^=].*\)\{0,1\}$/\1/p' Makefile | tr ' ' '\n')
phony=$(sed -n '/^\.PHONY:/,/[^\\]$/p' Makefile | sed -e 's/^\.PHONY://' -e 's/\\$//' | tr ' \t' '\n\n')
targets=$(printf '%s\n%s\n' "$rules" "$phony" | grep -v '^$' | grep -v '^FORCE$' | sort -u)
[ "$(printf '%s\n' "$targets" | wc -l)" -ge 20 ] && ok "found the targets" ||
	not_ok "found the targets" "only: $targets"

# a make of its own (not the jobserver of a `make test` this runs under)
help=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory help 2>"${TMPDIR:-/tmp}/kd-make-help.err$$") ||
	not_ok "make help runs" "$(cat "${TMPDIR:-/tmp}/kd-make-help.err$$")"
rm -f "${TMPDIR:-/tmp}/kd-make-help.err$$"
undocumented=()
for t in $targets; do
	# a help line: two spaces, the target's names (t among them), the description
	if ! printf '%s\n' "$help" | grep -Eq "^  ([a-zA-Z0-9_-]+ )*$t( [a-zA-Z0-9_-]+)* +[^ ].*$"; then
		undocumented+=("$t")
	fi
done
[ ${#undocumented[@]} -eq 0 ] && ok "every target is in make help" ||
	not_ok "every target is in make help" "missing: ${undocumented[*]}"

# every rule line of a plain target carries its description
bare=$(grep -E '^[a-zA-Z][a-zA-Z0-9_ -]*:([^=].*)?$' Makefile | grep -v '^FORCE:' | grep -v ' ## ')
[ -z "$bare" ] && ok "every target line has a ## description" ||
	not_ok "every target line has a ## description" "$bare"

long=$(printf '%s\n' "$help" | awk 'length($0) > 80')
[ -z "$long" ] && ok "make help fits 80 columns" || not_ok "make help fits 80 columns" "$long"

# the description is text, not a leftover of the old header dump
printf '%s\n' "$help" | grep -Eq '^  check +.*ASan' && ok "help describes check" ||
	not_ok "help describes check" "$help"
exit $status
