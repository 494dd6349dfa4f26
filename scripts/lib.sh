# shellcheck shell=bash
# The helpers that the scripts in scripts/ and .ci/run share. Source it after strict mode, from
# the repository root:
#
#   set -euo pipefail
#   cd "$(dirname "$0")/.."
#   . scripts/lib.sh
#
# (scripts/swarm-node, which never changes directory, sources "$(dirname "$0")/lib.sh".)
# Sourcing it only defines functions: it prints nothing, sets no shell option, changes no
# directory and sets no trap. `shellcheck -x` run from the repository root follows it.

# ---- Messages ---------------------------------------------------------------------------------

# say MESSAGE...: one line on stderr, after the script's name: "swarm-smoke: MESSAGE".
say() { echo "${0##*/}: $*" >&2; }

# die CODE MESSAGE...: says MESSAGE, then exits with CODE.
die() {
  local code="$1"
  shift
  say "$@"
  exit "$code"
}
