#!/usr/bin/env bash
# Runs each cmocka unit-test binary as its own process (and each tests/unit/*.sh with bash,
# counting its "ok"/"not ok" lines) and prints one closing line:
# "unit: N passed, N failed". Exits non-zero if any test or binary failed.
set -u
passed=0 failed=0 bad_bins=()
for t in "$@"; do
	if [[ "$t" == *.sh ]]; then
		# a shell test: "ok NAME" / "not ok NAME" lines, non-zero exit on any failure
		out=$(bash "$t" 2>&1)
		rc=$?
		printf '%s\n' "$out"
		p=$(printf '%s\n' "$out" | grep -c '^ok ')
		f=$(printf '%s\n' "$out" | grep -c '^not ok ')
		passed=$((passed + p))
		failed=$((failed + f))
		if [ "$rc" -ne 0 ] || [ "$p" -eq 0 ] || [ "$f" -ne 0 ]; then
			bad_bins+=("$(basename "$t") (exit $rc)")
			[ "$f" -eq 0 ] && failed=$((failed + 1))
		fi
		continue
	fi
	# KD_TEST_WRAPPER (e.g. valgrind ...) runs in front of each binary when set.
	out=$(${KD_TEST_WRAPPER:-} "$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ "$rc" -ne 0 ] || [ -z "$p" ]; then
		bad_bins+=("$(basename "$t") (exit $rc)")
		[ -z "$f" ] && [ "$rc" -ne 0 ] && failed=$((failed + 1))
	fi
done
echo
echo "unit binaries: $#"
[ ${#bad_bins[@]} -eq 0 ] || echo "failing binaries: ${bad_bins[*]}"
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]
