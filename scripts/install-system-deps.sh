#!/usr/bin/env bash
# System packages edgekit's tests need (Debian/Ubuntu): a real sshd for the SSH runner, QEMU user mode
# for --emulate, Chromium to render reports, and the Fashion-MNIST originals the shipped subset comes from.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    openssh-server openssh-client qemu-user-static chromium dataset-fashion-mnist
# Emulation (edgekit emulator setup): qemu-aarch64 plus the Debian archive keyring that verifies the
# arm64 packages fetched under edgekit's private apt configuration (needed on Ubuntu runners).
$SUDO apt-get install -y -q --no-install-recommends qemu-user-static debian-archive-keyring
