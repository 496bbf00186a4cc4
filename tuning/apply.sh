#!/usr/bin/env bash
# Applies tuning/sysctl/99-ringcast.conf to the running kernel and installs it for the next boot.
#
#   sudo tuning/apply.sh             apply, print every value before and after, install the file
#   tuning/apply.sh --dry-run        print what would change; writes nothing (no root needed)
#
# Idempotent: a second run changes nothing and prints "unchanged" for every key. Keys marked
# "raise only" (limits such as fs.file-max or net.core.somaxconn, and each field of
# net.ipv4.tcp_mem) are never lowered: when the kernel already has a higher value it is kept,
# and that higher value is what goes into /etc/sysctl.d, so a reboot does not lower it either.
# A key this kernel (or this network namespace) does not have is reported and skipped.
#
# Environment: RINGCAST_SYSCTL_CONF (source file, default the one next to this script) and
# RINGCAST_SYSCTL_DEST (installed file, default /etc/sysctl.d/99-ringcast.conf).
#
# Exit status: 0 when every available key holds its value, 1 when a write failed, 2 on misuse.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf="${RINGCAST_SYSCTL_CONF:-$here/sysctl/99-ringcast.conf}"
dest="${RINGCAST_SYSCTL_DEST:-/etc/sysctl.d/99-ringcast.conf}"
dry_run=0

case "${1:-}" in
  "") ;;
  -n | --dry-run) dry_run=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [--dry-run]" >&2
    exit 2
    ;;
esac

if [[ $dry_run -eq 0 && $(id -u) -ne 0 ]]; then
  echo "apply.sh changes kernel settings and must run as root (or use --dry-run)" >&2
  exit 2
fi
if [[ ! -r $conf ]]; then
  echo "cannot read $conf" >&2
  exit 2
fi

# Limits that are only ever raised.
raise_only=" fs.file-max fs.nr_open net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog net.ipv4.tcp_mem "

# Collapses runs of blanks and tabs (the kernel prints tcp_mem with tabs) to single spaces.
norm() {
  local -a words
  read -r -a words <<<"$*"
  printf '%s' "${words[*]}"
}

# Field-wise maximum of two equally long lists of integers.
fieldwise_max() {
  local -a a b out=()
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  if [[ ${#a[@]} -ne ${#b[@]} ]]; then
    printf '%s' "$2"
    return
  fi
  local i
  for i in "${!a[@]}"; do
    if ((a[i] > b[i])); then out+=("${a[i]}"); else out+=("${b[i]}"); fi
  done
  printf '%s' "${out[*]}"
}

failed=0
skipped=0
changed=0
installed=""
printf '%-30s %-26s %-26s %s\n' "key" "before" "after" "status"
while IFS= read -r line || [[ -n $line ]]; do
  line="${line%%$'\r'}"
  [[ $line =~ ^[[:space:]]*([#\;].*)?$ ]] && continue
  key="$(norm "${line%%=*}")"
  want="$(norm "${line#*=}")"
  proc="/proc/sys/${key//.//}"
  if [[ ! -e $proc ]]; then
    printf '%-30s %-26s %-26s %s\n' "$key" "-" "-" "skipped: not in this kernel or network namespace"
    skipped=$((skipped + 1))
    continue
  fi
  before="$(norm "$(cat "$proc")")"
  target="$want"
  if [[ $raise_only == *" $key "* ]]; then
    target="$(fieldwise_max "$before" "$want")"
  fi
  if [[ $before == "$target" ]]; then
    after="$before"
    status="unchanged"
  elif [[ $dry_run -eq 1 ]]; then
    after="$target"
    status="would change"
  else
    if err="$(sysctl -q -w "$key=$target" 2>&1)"; then :; fi
    after="$(norm "$(cat "$proc")")"
    if [[ $after == "$target" ]]; then
      status="changed"
      changed=$((changed + 1))
    else
      status="FAILED${err:+: $err}"
      failed=$((failed + 1))
    fi
  fi
  if [[ $target != "$want" && $status != FAILED* ]]; then
    status="$status (kept higher than $want)"
  fi
  printf '%-30s %-26s %-26s %s\n' "$key" "$before" "$after" "$status"
  installed+="$key = $target"$'\n'
done <"$conf"

content="# Installed by ringcast tuning/apply.sh from $conf: edit that file
# and run apply.sh again. Limits the kernel already had higher are kept at the higher value.
$installed"

if [[ $dry_run -eq 1 ]]; then
  if [[ -f $dest ]] && [[ "$(cat "$dest")"$'\n' == "$content" ]]; then
    echo "dry run: $dest is up to date"
  else
    echo "dry run: would write $dest"
  fi
elif [[ -f $dest ]] && [[ "$(cat "$dest")"$'\n' == "$content" ]]; then
  echo "$dest is up to date"
else
  mkdir -p "$(dirname "$dest")"
  tmp="$(mktemp "$dest.XXXXXX")"
  printf '%s' "$content" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dest"
  echo "installed $dest (applied at boot by systemd-sysctl / sysctl --system)"
fi

echo "$changed changed, $skipped skipped, $failed failed"
if [[ $failed -gt 0 ]]; then
  exit 1
fi
