#!/usr/bin/env bash
# Inspects a running ringcast and the kernel settings it depends on. Changes nothing.
#
#   tuning/check.sh              every process named ringcast
#   tuning/check.sh -p PID       one process
#
# For each process: its open-file and locked-memory limits against what it uses, its sockets
# (listeners with their accept queues, established connections, connections from local proxies
# and the local ports they consume), the event driver it runs (io_uring rings or epoll) and what
# could have disabled io_uring (kernel.io_uring_disabled, a seccomp filter such as Docker's,
# MONOIO_FORCE_LEGACY_DRIVER). Then the kernel's listen-queue overflows and drops, TCP memory,
# and every key of tuning/sysctl/99-ringcast.conf against its recommended value.
#
# Run it as root (or as the ringcast user) to see another user's descriptors and environment.
# Exit status: 0 all fine, 1 at least one WARN line, 2 no ringcast process found.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf="${RINGCAST_SYSCTL_CONF:-$here/sysctl/99-ringcast.conf}"
warnings=0
pids=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -p | --pid)
      pids+=("${2:?-p needs a pid}")
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "usage: $0 [-p PID]..." >&2
      exit 2
      ;;
  esac
done

warn() {
  printf '  WARN  %s\n' "$*"
  warnings=$((warnings + 1))
}
ok() { printf '  ok    %s\n' "$*"; }
info() { printf '        %s\n' "$*"; }

# "soft hard" of one line of /proc/PID/limits, e.g. limit_of PID "Max open files".
limit_of() {
  awk -v name="$2" 'index($0, name) == 1 {
      rest = substr($0, length(name) + 1); split(rest, f, " "); print f[1], f[2]; exit }' "/proc/$1/limits"
}

# A TcpExt counter from a netstat file (header line followed by a value line).
tcpext() {
  awk -v key="$2" '$1 == "TcpExt:" { if (!hdr) { for (i = 2; i <= NF; i++) col[$i] = i; hdr = 1 }
      else if (key in col) { print $(col[key]); exit } }' "$1"
}

sysctl_value() {
  local p="/proc/sys/${1//.//}"
  if [[ -r $p ]]; then
    local -a words
    read -r -a words <"$p"
    printf '%s' "${words[*]}"
  fi
}

check_process() {
  local pid=$1
  if [[ ! -d /proc/$pid ]]; then
    echo "== pid $pid: no such process"
    warnings=$((warnings + 1))
    return
  fi
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  echo "== ringcast pid $pid: ${cmd:-?}"

  # --- limits --------------------------------------------------------------------------------
  local nofile_soft nofile_hard memlock_soft memlock_hard fds=-1 sockets=0 rings=0 epolls=0 link f
  read -r nofile_soft nofile_hard <<<"$(limit_of "$pid" "Max open files")"
  read -r memlock_soft memlock_hard <<<"$(limit_of "$pid" "Max locked memory")"
  if ls "/proc/$pid/fd" >/dev/null 2>&1; then
    fds=0
    for f in "/proc/$pid/fd/"*; do
      link="$(readlink "$f" 2>/dev/null)" || continue
      fds=$((fds + 1))
      case "$link" in
        socket:*) sockets=$((sockets + 1)) ;;
        'anon_inode:[io_uring]') rings=$((rings + 1)) ;;
        'anon_inode:[eventpoll]') epolls=$((epolls + 1)) ;;
      esac
    done
  fi
  echo "limits"
  if [[ $fds -lt 0 ]]; then
    warn "cannot read /proc/$pid/fd: run as root or as the ringcast user"
  fi
  if [[ $nofile_soft == unlimited ]]; then
    ok "open files: $fds in use, limit unlimited"
  elif [[ $fds -ge 0 && $((fds * 100)) -ge $((nofile_soft * 80)) ]]; then
    warn "open files: $fds in use of a soft limit of $nofile_soft (hard $nofile_hard): above 80%; raise LimitNOFILE"
  else
    ok "open files: ${fds/#-1/?} in use, soft limit $nofile_soft (hard $nofile_hard): at most ~$((nofile_soft - 100)) connections"
  fi
  if [[ $nofile_soft != unlimited && $nofile_soft -lt 65536 ]]; then
    warn "open-file limit $nofile_soft is low for a WebSocket server: set LimitNOFILE=1048576 (systemd) or minfds (supervisor)"
  fi
  local kmaj kmin
  IFS=. read -r kmaj kmin _ <<<"$(uname -r)"
  if [[ $kmaj -lt 5 || ($kmaj -eq 5 && ${kmin%%[!0-9]*} -lt 12) ]]; then
    # Before 5.12 io_uring rings are charged to RLIMIT_MEMLOCK (a few hundred KiB per worker).
    if [[ $memlock_soft != unlimited && $memlock_soft -lt $((64 * 1024 * 1024)) ]]; then
      warn "locked memory: soft limit $memlock_soft bytes on kernel $(uname -r), which charges io_uring rings to it: set LimitMEMLOCK=infinity"
    else
      ok "locked memory: soft $memlock_soft, hard $memlock_hard (kernel $(uname -r) charges io_uring rings to it)"
    fi
  else
    ok "locked memory: soft $memlock_soft, hard $memlock_hard (bytes; kernel $(uname -r) charges io_uring rings to the memory cgroup, not to this limit)"
  fi

  # --- event driver -----------------------------------------------------------------------------
  echo "event driver"
  local disabled group seccomp legacy=""
  disabled="$(sysctl_value kernel.io_uring_disabled)"
  group="$(sysctl_value kernel.io_uring_group)"
  seccomp="$(awk '/^Seccomp:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
  if [[ -r /proc/$pid/environ ]] && tr '\0' '\n' <"/proc/$pid/environ" | grep -qx 'MONOIO_FORCE_LEGACY_DRIVER=1\|MONOIO_FORCE_LEGACY_DRIVER=true'; then
    legacy=1
  fi
  if [[ $rings -gt 0 ]]; then
    ok "io_uring: $rings ring(s) open (one per worker)"
  elif [[ $fds -ge 0 ]]; then
    warn "no io_uring ring open: ringcast runs on epoll (its start-up line says which driver)"
    [[ -n $legacy ]] && info "cause: MONOIO_FORCE_LEGACY_DRIVER=1 in its environment"
    [[ $seccomp == 2 ]] && info "possible cause: a seccomp filter (Docker's default profile blocks io_uring_setup)"
  fi
  case "$disabled" in
    "") info "kernel.io_uring_disabled: not present (kernel before 6.6): io_uring is available" ;;
    0) info "kernel.io_uring_disabled = 0: io_uring enabled for all processes" ;;
    1) info "kernel.io_uring_disabled = 1: io_uring only for root (CAP_SYS_ADMIN) and kernel.io_uring_group = $group" ;;
    2) info "kernel.io_uring_disabled = 2: io_uring disabled for everyone; ringcast falls back to epoll" ;;
  esac
  case "$seccomp" in
    2) info "seccomp: filter active (containers often block io_uring this way)" ;;
    1) info "seccomp: strict mode" ;;
  esac
  [[ $epolls -gt 0 ]] && info "epoll instances open: $epolls"

  # --- sockets ------------------------------------------------------------------------------------
  echo "sockets"
  info "socket descriptors: $sockets"
  local -a ports=()
  if command -v ss >/dev/null; then
    # Listeners of this process: one per worker (SO_REUSEPORT). Recv-Q = connections waiting
    # for accept, Send-Q = the backlog in force (min of ringcast's 4096 and net.core.somaxconn).
    local lines
    lines="$(ss -Hltnp 2>/dev/null | grep "pid=$pid," || true)"
    if [[ -z $lines ]]; then
      warn "no listening TCP socket found for pid $pid (need root to see other users' sockets)"
    else
      while read -r _state recvq sendq local _rest; do
        info "listener $local: accept queue $recvq of $sendq"
        if [[ $recvq -gt 0 && $recvq -ge $((sendq / 2)) ]]; then
          warn "accept queue of $local is $recvq of $sendq: workers are not keeping up"
        fi
        ports+=("${local##*:}")
      done <<<"$lines"
      local port
      for port in $(printf '%s\n' "${ports[@]}" | sort -u); do
        local est local_peers
        est="$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)"
        # Connections whose peer is this host (nginx, a local load balancer): each takes one of
        # the peer's local ports.
        local_peers="$(ss -Htn state established "( sport = :$port )" 2>/dev/null |
          awk '{ print $4 }' | grep -cE '^(127\.|\[::1\]|\[::ffff:127\.)' || true)"
        info "port $port: $est established connection(s), $local_peers from loopback peers (proxies)"
        local range lo hi
        range="$(sysctl_value net.ipv4.ip_local_port_range)"
        read -r lo hi <<<"$range"
        if [[ -n $lo && $local_peers -gt 0 ]]; then
          local per=$((hi - lo + 1))
          if [[ $((local_peers * 100)) -ge $((per * 70)) ]]; then
            warn "proxied connections use $local_peers of $per local ports per upstream address: add upstream addresses (see nginx template) or widen ip_local_port_range"
          else
            info "ip_local_port_range $lo-$hi: $per ports per (proxy source, upstream address) pair"
          fi
        fi
      done
    fi
  else
    info "ss (iproute2) not installed: skipping listener and connection counts"
  fi

  # --- kernel counters seen from the process's network namespace ---------------------------------
  local netstat="/proc/$pid/net/netstat" sockstat="/proc/$pid/net/sockstat"
  [[ -r $netstat ]] || netstat=/proc/net/netstat
  [[ -r $sockstat ]] || sockstat=/proc/net/sockstat
  echo "listen queues and TCP memory (counters since boot, whole network namespace)"
  local overflows drops cookies abortmem
  overflows="$(tcpext "$netstat" ListenOverflows)"
  drops="$(tcpext "$netstat" ListenDrops)"
  cookies="$(tcpext "$netstat" SyncookiesSent)"
  abortmem="$(tcpext "$netstat" TCPAbortOnMemory)"
  if [[ ${overflows:-0} -gt 0 || ${drops:-0} -gt 0 ]]; then
    warn "ListenOverflows $overflows, ListenDrops $drops: some accept queue was full; compare over time (nstat -az TcpExtListenOverflows)"
  else
    ok "ListenOverflows 0, ListenDrops 0"
  fi
  [[ ${cookies:-0} -gt 0 ]] && info "SyncookiesSent $cookies: the SYN queue overflowed at some point (net.ipv4.tcp_max_syn_backlog)"
  if [[ ${abortmem:-0} -gt 0 ]]; then
    warn "TCPAbortOnMemory $abortmem: connections were reset because TCP memory (net.ipv4.tcp_mem) ran out"
  fi
  local tcpline mem_pages tcp_mem_max
  tcpline="$(grep '^TCP:' "$sockstat")"
  info "${tcpline}"
  mem_pages="$(awk '/^TCP:/ { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' "$sockstat")"
  read -r _ tcp_mem_pressure tcp_mem_max <<<"$(sysctl_value net.ipv4.tcp_mem)"
  if [[ -n $mem_pages && -n $tcp_mem_pressure && $mem_pages -ge $tcp_mem_pressure ]]; then
    warn "TCP buffers use $mem_pages pages, at or above the pressure threshold $tcp_mem_pressure (tcp_mem max $tcp_mem_max)"
  elif [[ -n $mem_pages ]]; then
    info "TCP buffers: $mem_pages pages in use; pressure at $tcp_mem_pressure, hard cap $tcp_mem_max"
  fi
}

check_sysctls() {
  echo "== kernel settings (recommended: $conf)"
  if [[ ! -r $conf ]]; then
    info "cannot read $conf"
    return
  fi
  local raise_only=" fs.file-max fs.nr_open net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.core.netdev_max_backlog net.ipv4.tcp_mem "
  local line key want have
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*([#\;].*)?$ ]] && continue
    read -r key <<<"${line%%=*}"
    local -a w
    read -r -a w <<<"${line#*=}"
    want="${w[*]}"
    have="$(sysctl_value "$key")"
    if [[ -z $have ]]; then
      info "$key: not present here"
      continue
    fi
    if [[ $have == "$want" ]]; then
      ok "$key = $have"
    elif [[ $raise_only == *" $key "* ]]; then
      local -a h r
      read -r -a h <<<"$have"
      read -r -a r <<<"$want"
      local low=0 i
      for i in "${!r[@]}"; do
        [[ ${h[i]:-0} -lt ${r[i]} ]] && low=1
      done
      if [[ $low -eq 1 ]]; then
        warn "$key = $have, below the recommended $want (tuning/apply.sh)"
      else
        ok "$key = $have (recommended at least $want)"
      fi
    else
      warn "$key = $have, recommended $want (tuning/apply.sh)"
    fi
  done <"$conf"
}

if [[ ${#pids[@]} -eq 0 ]]; then
  mapfile -t pids < <(pgrep -x ringcast || true)
fi
if [[ ${#pids[@]} -eq 0 ]]; then
  echo "no ringcast process found (pass -p PID)"
  check_sysctls
  exit 2
fi
for pid in "${pids[@]}"; do
  check_process "$pid"
  echo
done
check_sysctls
echo
if [[ $warnings -gt 0 ]]; then
  echo "$warnings warning(s)"
  exit 1
fi
echo "no warnings"
