#!/usr/bin/env bash
# What `make test` needs from the machine, checked before its long steps; one line each.
#
#   Python >= 3.10             runs wsio and its tests ($PYTHON, default python3)
#   a C compiler (cc)          builds the compiled engine (without one: pure Python, warned)
#   Python 2.7 (pyenv 2.7.18)  runs the Autobahn|Testsuite's wstest (compliance/setup.sh)
#   chromium (Debian package)  the browser test; installed with apt-get when missing (root)
#
# Exits 1 after listing everything missing, so that one run shows all of it.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
missing=0
say() { echo "prerequisites: $*"; }
lack() {
    echo "prerequisites: MISSING $*" >&2
    missing=1
}

if version=$("$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10); print(sys.version.split()[0])' 2>/dev/null); then
    say "Python $version ($PYTHON)"
else
    lack "Python >= 3.10 as \$PYTHON ($PYTHON): install one, or run make PYTHON=/path/python3.x"
fi

if compiler=$(command -v "${CC:-cc}" || command -v gcc); then
    say "C compiler $compiler"
else
    # Not fatal: wsio then installs pure, and the build says so.
    say "no C compiler: the engine will be pure Python (apt-get install gcc for the compiled one)"
fi

if line=$(bash compliance/setup.sh --check 2>&1); then
    say "${line#compliance/setup.sh: }"
else
    lack "Python 2.7 for the Autobahn suite: ${line#compliance/setup.sh: }"
fi

# Debian's package: /usr/bin/chromium (Ubuntu's chromium-browser is a snap stub).
if browser=$(command -v chromium); then
    say "chromium $browser"
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing chromium (apt-get install -y chromium) for the browser test"
    export DEBIAN_FRONTEND=noninteractive
    apt="apt-get -q -y -o DPkg::Lock::Timeout=300"
    if $apt install chromium >/dev/null 2>&1 || { $apt update >/dev/null && $apt install chromium >/dev/null; }; then
        say "chromium $(command -v chromium)"
    else
        lack "chromium for the browser test: apt-get install -y chromium failed"
    fi
else
    lack "chromium for the browser test: as root, apt-get install -y chromium"
fi

exit $missing
