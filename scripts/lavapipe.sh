#!/usr/bin/env bash
# Make a Vulkan adapter available for the wgpu backend's tests: any installed Vulkan driver
# will do; otherwise install Mesa's software one (lavapipe, Debian packages; root).
# Exits non-zero when there is none, so callers can say the wgpu test is skipped.
set -euo pipefail

icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d)
has_driver() {
    compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null \
        || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null
}

if has_driver && ldconfig -p | grep -q libvulkan.so.1; then
    echo "vulkan: drivers in ${icd_dirs[*]}"
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "vulkan: no driver, and no root apt-get to install Mesa's lavapipe"
    exit 1
fi
echo "vulkan: installing Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q mesa-vulkan-drivers libvulkan1 >/dev/null
has_driver
