#!/usr/bin/env bash
# Installs the official Autobahn|Testsuite (`wstest`) into .autobahn/ at the repository
# root (git-ignored). wstest is Python 2 only, so it gets its own virtualenv made with
# pyenv's Python 2.7; every package is pinned in compliance/requirements-wstest.txt.
#
# Idempotent and non-interactive (CI runs it as root with no stdin): when the pinned set
# is already installed and wstest starts, it returns at once. Safe to run concurrently
# (a lock serialises installs). Override the interpreter with WSIO_PYTHON2=/path/python2.7.
# `--check` only looks for that interpreter and says in one line what it found.
set -euo pipefail

cd "$(dirname "$0")/.."
DEST=.autobahn
VENV=$DEST/venv
BOOT=$DEST/bootstrap
REQ=compliance/requirements-wstest.txt
STAMP=$VENV/.installed
LOG=$DEST/setup.log
VIRTUALENV_PIN="virtualenv==20.15.1" # the last virtualenv that still runs on Python 2.7

# A stray PYTHONPATH/PYTHONHOME from the caller's Python 3 environment must not leak
# into the Python 2 interpreter.
unset PYTHONPATH PYTHONHOME PIP_REQUIRE_VIRTUALENV

say() { echo "compliance/setup.sh: $*"; }

installed() {
    [[ -f $STAMP && "$(cat "$STAMP")" == "$WANT" ]] &&
        "$VENV/bin/wstest" --autobahnversion >/dev/null 2>&1
}

# Runs an install step with its output going to .autobahn/setup.log, shown only when it
# fails (pip 19/20 on Python 2 is chatty: deprecation notices, this machine's optional
# local indexes).
quiet() {
    echo "+ $*" >>"$LOG"
    local rc=0
    "$@" >>"$LOG" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        tail -n 40 "$LOG" >&2
        say "failed (exit $rc): $* -- full log in $LOG" >&2
        return "$rc"
    fi
}

find_python2() {
    local root="" cand
    if [[ -n ${WSIO_PYTHON2:-} ]]; then
        if "$WSIO_PYTHON2" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
            echo "$WSIO_PYTHON2"
            return 0
        fi
        return 1
    fi
    if command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root 2>/dev/null || true)
    fi
    for cand in \
        "${root:-/nonexistent}/versions/2.7.18/bin/python2.7" \
        "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python2.7" \
        "${root:-/nonexistent}"/versions/2.7*/bin/python2.7 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 \
        /root/.pyenv/versions/2.7*/bin/python2.7 \
        "$(command -v python2.7 2>/dev/null || true)"; do
        if [[ -n $cand && -x $cand ]] &&
            "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

# wsaccel (the suite's C masking/UTF-8 speed-up) is built from source: it needs a C compiler.
ensure_compiler() {
    if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        say "no C compiler (cc/gcc) and not root to install one: apt-get install gcc libc6-dev" >&2
        return 1
    fi
    say "installing gcc (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q gcc libc6-dev >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q gcc libc6-dev >/dev/null
    fi
}

if ! PY2=$(find_python2); then
    say "no Python 2.7 found (\$WSIO_PYTHON2, \$(pyenv root)/versions/2.7*, PATH);" \
        "install it with pyenv (pyenv install 2.7.18) or point WSIO_PYTHON2 at a python2.7" >&2
    exit 1
fi
if [[ ${1:-} == --check ]]; then
    say "Python 2.7 for wstest: $PY2"
    exit 0
fi
WANT="$(sha256sum "$REQ" | cut -d' ' -f1) $VIRTUALENV_PIN $PY2"

# Fast path, without the lock.
if installed; then
    say "wstest is installed ($VENV/bin/wstest)"
    exit 0
fi

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9
if installed; then # another run installed it while we waited for the lock
    say "wstest is installed ($VENV/bin/wstest)"
    exit 0
fi

start=$SECONDS
say "installing wstest into $VENV with $PY2"
ensure_compiler
rm -rf "$VENV" "$BOOT"
: >"$LOG"
if ! "$PY2" -m pip --version >/dev/null 2>&1; then
    quiet "$PY2" -m ensurepip --default-pip
fi
# virtualenv goes into a private folder (not the user's site-packages) so that the
# whole install lives under .autobahn/.
quiet "$PY2" -m pip install --disable-pip-version-check --no-warn-script-location \
    --target "$BOOT" "$VIRTUALENV_PIN"
quiet env PYTHONPATH="$BOOT" "$PY2" -m virtualenv --no-periodic-update --quiet "$VENV"
quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQ"
if ! "$VENV/bin/wstest" --autobahnversion; then
    say "wstest was installed but does not start" >&2
    exit 1
fi
echo "$WANT" >"$STAMP"
say "done in $((SECONDS - start)) s"
