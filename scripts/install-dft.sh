#!/usr/bin/env bash
# Install the DFT reference calculators (GPAW, serial build, + DFT-D3) into the active
# Python environment.  Idempotent: every step is skipped when its result is already there.
#
#   scripts/install-dft.sh              # apt packages (if missing) + gpaw + dftd3
#   scripts/install-dft.sh --apt-only   # only the Debian packages
#   source scripts/install-dft.sh --apt-only && pip install -e '.[dft]'
#                                       # sourcing also exports GPAW_CONFIG into your shell
#
# Environment: PYTHON (default: python of the active environment), SKIP_APT=1 to never call
# apt-get (e.g. no root; the script then only checks that the packages are present).
#
# GPAW has no wheels on PyPI: pip compiles it from the sdist (about 40 s on 2 cores).
# Its setup.py reads the build configuration from the file named by GPAW_CONFIG; ours is
# scripts/gpaw-siteconfig.py (serial, libxc + FFTW + OpenBLAS).  Any later
# `pip install '.[dft]'` finds gpaw already installed at the pinned version and builds
# nothing; if you install it by hand instead, export GPAW_CONFIG first (sourcing this script
# does that).

# Keep in step with the `dft` extra in pyproject.toml.
_hc_gpaw_version=26.7.0
_hc_dftd3_version=1.7.0
_hc_gpaw_data_version=1.2.1  # PAW setups + dzp basis sets (a wheel, no download step)
_hc_apt_packages=(build-essential pkg-config libxc-dev libopenblas-dev libfftw3-dev)

_hc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GPAW_CONFIG="$_hc_root/scripts/gpaw-siteconfig.py"

_hc_main() {
    set -euo pipefail
    local apt_only=0 arg
    for arg in "$@"; do
        case "$arg" in
            --apt-only) apt_only=1 ;;
            -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
            *) echo "install-dft.sh: unknown option $arg (use --apt-only or --help)" >&2
               return 2 ;;
        esac
    done
    local python="${PYTHON:-python}"
    command -v "$python" >/dev/null || python=python3
    echo "== GPAW_CONFIG=$GPAW_CONFIG"

    # --- 1. Debian packages -------------------------------------------------------------
    local missing=() pkg
    for pkg in "${_hc_apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "== apt: all present (${_hc_apt_packages[*]})"
    elif [ "${SKIP_APT:-0}" = 1 ]; then
        echo "install-dft.sh: missing Debian packages ${missing[*]} and SKIP_APT=1:" \
             "install them first" >&2
        return 1
    else
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "== apt: installing ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"
    fi
    [ "$apt_only" = 1 ] && return 0

    # --- 2. gpaw + dftd3 into the active environment --------------------------------------
    echo "== python: $(command -v "$python") ($("$python" -c 'import sys; print(sys.prefix)'))"
    local have
    have="$("$python" - "$_hc_gpaw_version" "$_hc_dftd3_version" "$_hc_gpaw_data_version" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
want = {"gpaw": sys.argv[1], "dftd3": sys.argv[2], "gpaw-data": sys.argv[3]}
for name, pinned in want.items():
    try:
        ok = version(name) == pinned
    except PackageNotFoundError:
        ok = False
    if ok:
        print(name, end=" ")
EOF
)"
    local wheels=()
    [[ " $have " == *" dftd3 "* ]] || wheels+=("dftd3==$_hc_dftd3_version")
    [[ " $have " == *" gpaw-data "* ]] || wheels+=("gpaw-data==$_hc_gpaw_data_version")
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "== pip: dftd3 $_hc_dftd3_version and gpaw-data $_hc_gpaw_data_version present"
    else
        echo "== pip: installing ${wheels[*]}"
        "$python" -m pip install "${wheels[@]}"
    fi
    if [[ " $have " == *" gpaw "* ]]; then
        echo "== pip: gpaw $_hc_gpaw_version present"
    else
        echo "== pip: building gpaw==$_hc_gpaw_version from source with $GPAW_CONFIG"
        # --no-cache-dir: never reuse a wheel that pip cached from an earlier build made
        # without our siteconfig (e.g. one that silently left out libxc, or built with MPI).
        "$python" -m pip install --no-cache-dir "gpaw==$_hc_gpaw_version"
    fi

    # --- 3. check the build ---------------------------------------------------------------
    "$python" - <<'EOF'
import os
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
import gpaw
import gpaw.mpi
from ase.build import bulk
from dftd3.ase import DFTD3
from gpaw import GPAW, get_libraries

libxc = get_libraries()["libxc"]
assert libxc, "GPAW was built without libxc: check libxc-dev and GPAW_CONFIG"
assert gpaw.mpi.world.size == 1, "expected a serial run"
atoms = bulk("Na", "bcc", a=4.2)
atoms.calc = GPAW(mode="lcao", basis="sz(dzp)", kpts=(2, 2, 2), txt=None)
energy = atoms.get_potential_energy()
d3 = DFTD3(method="PBE", damping="d3bj").get_potential_energy(atoms)
print(f"== check: gpaw {gpaw.__version__} serial, libxc {libxc}; bcc Na LCAO sz E = {energy:.3f} eV;"
      f" D3(BJ) = {d3:.3f} eV")
EOF
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    _hc_main "$@"
else
    # Sourced: run in a subshell so `set -e` and failures do not touch the caller's shell;
    # GPAW_CONFIG stays exported in the caller.
    (_hc_main "$@")
fi
