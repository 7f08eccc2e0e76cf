#!/usr/bin/env bash
# One-time set-up: npm packages, and on a Linux machine without a WebGPU adapter,
# the Vulkan loader plus Mesa's lavapipe (a CPU Vulkan driver). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
min_mesa_major=23

log() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root for: $*  (run this script as root or install sudo)"; return 1; fi
}

have_adapter() { node scripts/probe-adapter.mjs >/dev/null 2>&1; }

mesa_major() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/'
}

enable_bookworm_backports() {
  local sources=/etc/apt/sources.list.d/debian.sources
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then return 0; fi
  if [ -f "$sources" ]; then
    log "adding bookworm-backports to the Suites of $sources"
    as_root sed -i -E '0,/^Suites:(.* )?bookworm( |$)/s/^(Suites:(.* )?bookworm( .*)?)$/\1 bookworm-backports/' "$sources"
  elif [ -f /etc/apt/sources.list ]; then
    local line
    line=$(grep -E '^deb .* bookworm( |$)' /etc/apt/sources.list | head -n 1 || true)
    [ -n "$line" ] || { log "no bookworm line in /etc/apt/sources.list to derive backports from"; return 1; }
    log "adding bookworm-backports next to the existing bookworm source"
    echo "$line" | sed -E 's/ bookworm( |$)/ bookworm-backports\1/' | as_root tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  else
    log "no apt sources found; install libvulkan1 and mesa-vulkan-drivers >= $min_mesa_major by hand"; return 1
  fi
}

install_lavapipe() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: install the Vulkan loader and Mesa's lavapipe (mesa-vulkan-drivers >= $min_mesa_major) with your package manager"
    return 1
  fi
  local codename=""
  [ -r /etc/os-release ] && codename=$(. /etc/os-release; echo "${VERSION_CODENAME:-}")
  if [ "$codename" = bookworm ]; then
    enable_bookworm_backports
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports libvulkan1 mesa-vulkan-drivers
  else
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 mesa-vulkan-drivers
  fi
  local major; major=$(mesa_major)
  if [ -z "$major" ] || [ "$major" -lt "$min_mesa_major" ]; then
    log "mesa-vulkan-drivers is ${major:-missing}; Dawn needs Mesa >= $min_mesa_major (on Debian bookworm, from bookworm-backports)"
    return 1
  fi
  log "Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed"
}

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
# Compiles the packages (dist/) that the huatuo-train command runs.
npm run build

if have_adapter; then
  log "WebGPU adapter found: $(node scripts/probe-adapter.mjs)"
else
  if [ "$(uname -s)" != Linux ]; then
    log "no WebGPU adapter found; on macOS and Windows Dawn uses Metal/D3D12: update the GPU driver"
    exit 1
  fi
  log "no WebGPU adapter: installing the Vulkan loader and lavapipe"
  install_lavapipe
  have_adapter || { log "still no WebGPU adapter after installing lavapipe; see README, 'Prerequisites'"; node scripts/probe-adapter.mjs || true; exit 1; }
  log "WebGPU adapter found: $(node scripts/probe-adapter.mjs)"
fi
