# Sourced by scripts/stack and scripts/run: is the process in a pid file really running?
#
# `kill -0` also succeeds for a zombie (killed, not yet reaped by its parent), which would make
# `make run` skip restarting a crashed service. A process is alive only if it exists and its
# state in /proc/<pid>/stat is neither Z (zombie) nor X (dead).

pid_alive() { # $1 pid
  local pid=$1 stat state
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ -r "/proc/$pid/stat" ] || return 0  # no procfs (macOS): kill -0 is all we have
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  state=${stat##*) }      # the command name may hold spaces and ")": cut after the last ") "
  state=${state%% *}
  [ "$state" != Z ] && [ "$state" != X ]
}

alive() { # $1 pid file
  [ -f "$1" ] && pid_alive "$(cat "$1")"
}
