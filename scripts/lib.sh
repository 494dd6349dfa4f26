# shellcheck shell=bash
# The helpers that the scripts in scripts/ and .ci/run share. Source it after strict mode, from
# the repository root:
#
#   set -euo pipefail
#   cd "$(dirname "$0")/.."
#   . scripts/lib.sh
#
# (scripts/swarm-node, which never changes directory, sources "$(dirname "$0")/lib.sh".)
# Sourcing it defines functions (and remove_at_exit's empty list): it prints nothing, sets no
# shell option, changes no directory and sets no trap (remove_at_exit sets one when called).
# `shellcheck -x`, run from the repository root, follows it.

# ---- Messages ------------------------------------------------------------------------------------

# say MESSAGE...: one line on stderr, after the script's name: "swarm-smoke: MESSAGE".
say() { echo "${0##*/}: $*" >&2; }

# die CODE MESSAGE...: says MESSAGE, then exits with CODE.
die() {
  local code="$1"
  shift
  say "$@"
  exit "$code"
}

# left_behind WHEN [LINE...]: if any LINE is not empty, says "left behind WHEN:" (or "left
# behind:" with an empty WHEN) and the lines on stderr, and fails; passes quietly otherwise.
left_behind() {
  local when="$1"
  shift
  [ -n "$*" ] || return 0
  say "left behind${when:+ $when}:"
  printf '%s\n' "$@" >&2
  return 1
}

# ---- Root ----------------------------------------------------------------------------------------

# is_root: whether the script runs as root.
is_root() { [ "$(id -u)" -eq 0 ]; }

# as_root COMMAND...: runs COMMAND as it is when the script runs as root, else through sudo.
as_root() {
  if is_root; then "$@"; else sudo "$@"; fi
}

# ---- Tools in target/tools -----------------------------------------------------------------------

# need_on_path TOOL: exits 1 unless TOOL is on PATH, saying how scripts/install-TOOL puts it there.
need_on_path() {
  command -v "$1" >/dev/null \
    || die 1 "$1 is not on PATH; run: export PATH=\"\$(scripts/install-$1):\$PATH\""
}

# path_add_tool NAME: runs scripts/install-NAME (from the repository root) and puts the directory
# it prints first on PATH, exported. Exits with its status if it fails.
path_add_tool() {
  local dir
  dir="$(scripts/install-"$1")"
  PATH="$dir:$PATH"
  export PATH
}

# pip_install_into ROOT [PIP-OPTION...] REQUIREMENT...: installs the requirements from PyPI into
# ROOT alone (pip --target: nothing system-wide), replacing whatever ROOT held; pip's output goes
# to stderr. Exits 1 if there is no python3 or pip fails.
pip_install_into() {
  local root="$1" arg reqs=()
  shift
  for arg in "$@"; do
    case "$arg" in -*) ;; *) reqs+=("$arg") ;; esac
  done
  command -v python3 >/dev/null || die 1 "needs python3 with pip"
  rm -rf "$root"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location --target "$root" "$@" >&2 \
    || die 1 "pip could not install ${reqs[*]}"
}

# ---- Debian packages -----------------------------------------------------------------------------

# need_debian [HINT...]: exits 1 unless apt-get and dpkg are here, saying so (and HINT, if given).
# shellcheck disable=SC2120 # the hint is optional: install-agents gives none
need_debian() {
  if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    die 1 "needs apt-get and dpkg (Debian/Ubuntu)${*:+; $*}"
  fi
}

# apt_update: refreshes the package lists (as root, or through sudo), printing only errors.
apt_update() { as_root apt-get update -qq; }

# apt_install [APT-GET-OPTION...] PACKAGE...: installs Debian packages non-interactively (as
# root, or through sudo). A first try that fails (a fresh machine may have no package lists, or
# stale ones; an install killed half-way leaves dpkg "interrupted") is retried once after
# finishing what dpkg left and apt_update. apt-get's progress goes to stdout: callers redirect
# it (>/dev/null, or >&2 where stdout is a result); its warnings and errors to stderr.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -qq "$@" && return 0
  as_root dpkg --configure -a || true
  # A failed update may still have refreshed the lists that matter: the retry judges.
  apt_update || true
  as_root apt-get install -y -qq "$@"
}

# deb_extract PACKAGE FILE DEST: downloads Debian's PACKAGE (apt-get download: nothing is
# installed, no service started), refreshing the package lists once if the first download
# fails, and installs only FILE of it (a path inside the package, like /usr/bin/promtool) as
# DEST, mode 0755. Its output goes to stderr; the download is removed however it ends.
deb_extract() (
  package="$1" file="$2" dest="$3"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # As root, apt warns that it downloads "unsandboxed" (its _apt user cannot write here): harmless.
  download() { (cd "$work" && apt-get download "$package" >&2); }
  download || { apt_update >&2 || true; download; }
  dpkg -x "$work/$package"_*.deb "$work/x"
  install -m 0755 "$work/x$file" "$dest"
)

# ---- Temporary files -----------------------------------------------------------------------------

# remove_at_exit PATH...: removes each PATH (a temporary file or directory) when the script exits,
# however it exits; the exit status stays the script's. Calls add up, but the EXIT trap is theirs:
# a script with a cleanup trap of its own removes its temporary files there instead. Not from a
# subshell (its trap would fire when the subshell ends).
_lib_remove_at_exit=()
remove_at_exit() {
  _lib_remove_at_exit+=("$@")
  trap 'rm -rf -- "${_lib_remove_at_exit[@]}"' EXIT
}

# ---- Docker --------------------------------------------------------------------------------------

# docker_engine_up: whether a Docker engine answers (`docker info`), quietly.
docker_engine_up() { docker info >/dev/null 2>&1; }

# engine_rootless: whether the Docker engine is rootless (it maps container users into the
# invoking user's subordinate ids, so the files a container writes are not its user's).
engine_rootless() { docker info --format '{{.SecurityOptions}}' | grep -q rootless; }

# compose_clis: the Compose command lines installed, one a line, the v2 plugin first: `docker
# compose` and `docker-compose`, either or both; nothing if neither.
compose_clis() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"; fi
  if command -v docker-compose >/dev/null; then echo "docker-compose"; fi
}

# docker_labelled LABEL KIND...: the Docker objects that carry LABEL (key=value), one "KIND NAME"
# line each, for each KIND of container, network, volume, service, secret and config. The Swarm
# kinds (service, secret, config) say nothing on an engine that is not a swarm manager, and fail.
docker_labelled() {
  local filter="label=$1" kind
  shift
  for kind in "$@"; do
    case "$kind" in
      container) docker ps -a --filter "$filter" --format 'container {{.Names}}' ;;
      network|volume) docker "$kind" ls --filter "$filter" --format "$kind {{.Name}}" ;;
      service|secret|config)
        docker "$kind" ls --filter "$filter" --format "$kind {{.Name}}" 2>/dev/null ;;
      *) die 2 "docker_labelled: unknown kind '$kind'" ;;
    esac
  done
}

# ---- The deployment smokes (compose-smoke, swarm-smoke) ------------------------------------------

# container_user: exports OUTAGE_LAB_UID and OUTAGE_LAB_GID, the user the lab's containers run
# as, defaulting to the invoking user.
container_user() {
  export OUTAGE_LAB_UID="${OUTAGE_LAB_UID:-$(id -u)}"
  export OUTAGE_LAB_GID="${OUTAGE_LAB_GID:-$(id -g)}"
}

# make_runs_dir DIR: makes DIR, the run directory the containers write through a bind mount,
# giving it to OUTAGE_LAB_UID:OUTAGE_LAB_GID when that is not the invoking user (as root).
make_runs_dir() {
  mkdir "$1"
  if [ "$OUTAGE_LAB_UID:$OUTAGE_LAB_GID" != "$(id -u):$(id -g)" ]; then
    chown "$OUTAGE_LAB_UID:$OUTAGE_LAB_GID" "$1"
  fi
}

# first_report RUNS: the path of the first report.json a run wrote under RUNS
# (RUNS/RUN-DIR/report.json), or nothing.
first_report() { find "$1" -mindepth 2 -maxdepth 2 -name report.json | sed -n 1p; }
