#!/usr/bin/env bash
# Build the bench-PC package: dist/station/ (one folder, executables `station-gui` and `station`)
# and dist/station-<version>-<os>-<arch>.tar.gz, with PyInstaller from the project venv.
#
#   scripts/build-app.sh                 build and archive
#   scripts/build-app.sh --no-archive    build only (the packaging test uses this)
#   scripts/build-app.sh --clean         drop PyInstaller's cache in build/ first
#
# VENV=path overrides the venv (default .venv, created by `make install`). On Windows run it from
# Git Bash; the installer is then made with Inno Setup (packaging/windows/station.iss), see
# docs/PACKAGING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

archive=1
pyinstaller_options=(--noconfirm)
for arg in "$@"; do
    case $arg in
        --no-archive) archive=0 ;;
        --clean) pyinstaller_options+=(--clean) ;;
        *) echo "build-app.sh: unknown option '$arg' (use --no-archive, --clean)" >&2; exit 2 ;;
    esac
done

venv=${VENV:-.venv}
if [[ -x $venv/bin/python ]]; then
    python=$venv/bin/python
elif [[ -x $venv/Scripts/python.exe ]]; then
    python=$venv/Scripts/python.exe
else
    echo "build-app.sh: no virtual environment at '$venv'; run 'make install' first" >&2
    exit 1
fi
if ! "$python" -c "import PyInstaller" 2>/dev/null; then
    echo "build-app.sh: PyInstaller is not installed in '$venv'; run 'make install' (it installs the dev extra)" >&2
    exit 1
fi

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' station/__init__.py)
os_name=$(uname -s | tr '[:upper:]' '[:lower:]')
case $os_name in mingw* | msys* | cygwin*) os_name=windows ;; esac
arch=$(uname -m)

start=$SECONDS
"$python" -m PyInstaller "${pyinstaller_options[@]}" build.spec
build_seconds=$((SECONDS - start))

bundle=dist/station
for executable in station station-gui; do
    if [[ ! -x $bundle/$executable && ! -x $bundle/$executable.exe ]]; then
        echo "build-app.sh: PyInstaller finished but $bundle/$executable is missing" >&2
        exit 1
    fi
done
echo
echo "built $bundle (station $version) in $((build_seconds / 60)) min $((build_seconds % 60)) s"
echo "bundle size: $(du -sh "$bundle" | cut -f1)"
echo "largest parts:"
# the biggest folders and files one level inside the bundle's library folder (nvidia/ only in a
# CUDA build); no `| head` under pipefail: head closing the pipe would fail the build with SIGPIPE
largest=$(du -sh "$bundle"/_internal/* "$bundle"/_internal/nvidia/* 2>/dev/null | sort -rh || true)
sed -n '1,12s/^/    /p' <<<"$largest"

if ((archive)); then
    archive_path=dist/station-$version-$os_name-$arch.tar.gz
    start=$SECONDS
    tar -C dist -czf "$archive_path" station
    echo "archive: $archive_path, $(du -h "$archive_path" | cut -f1), written in $((SECONDS - start)) s"
fi
