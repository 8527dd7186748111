#!/usr/bin/env bash
# Lets this amd64 machine run arm64 (aarch64) binaries, in containers too, for the arm64 lane of the
# Docker-provider test: Debian's qemu-user-static, registered with the kernel's binfmt_misc.
#
# The registration needs two flags beyond Debian's (OPF in /usr/lib/binfmt.d/qemu-aarch64.conf):
#   F  the interpreter is opened once, here, so that it works inside a container's root too;
#   C  a setuid binary keeps its privileges (without it `sudo` says "effective uid is not 0", and
#      `vagrant up` stops at Vagrant's first sudo). C implies O.
# A registration already there with both flags is kept; otherwise it is replaced (binfmt_misc is the
# kernel's, one for the whole machine). Mounts binfmt_misc if nothing has. Prints the flags.
set -euo pipefail

binfmt=/proc/sys/fs/binfmt_misc
entry=$binfmt/qemu-aarch64
conf=/usr/lib/binfmt.d/qemu-aarch64.conf

if [ ! -f "$conf" ]; then
  echo "arm64-emulation: installing Debian's qemu-user-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
fi
[ -f "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"

flags() { [ ! -f "$entry" ] || sed -n 's/^flags: //p' "$entry"; }
current=$(flags)
if [[ $current != *F* || $current != *C* ]]; then
  [ ! -f "$entry" ] || echo -1 >"$entry"
  # The line is binfmt_misc's own format (:name:type:offset:magic:mask:interpreter:flags): the
  # package's, with its flags replaced.
  line=$(grep '^:qemu-aarch64:' "$conf")
  printf '%s' "${line%:*}:POCF" >"$binfmt/register"
fi
[ "$(sed -n 1p "$entry")" = enabled ] || { echo "arm64-emulation: qemu-aarch64 is not enabled" >&2; exit 1; }
echo "arm64-emulation: qemu-aarch64 registered with flags $(flags) ($(sed -n 's/^interpreter //p' "$entry"))"
