#!/bin/sh
# Installs or upgrades InterLog from an unpacked firmware bundle:
#
#   sudo ./install.sh              install on this machine and (re)start the service
#   ./install.sh --dry-run         print what would change, change nothing
#   ./install.sh --prefix DIR      install into the root file system at DIR (an image
#                                  being built, or a test): no user (systemd-sysusers makes
#                                  it at boot), no chown, no systemctl; enabled by a link
#
# First install: creates the user "interlog", the directories, the config
# /etc/interlog/interlog.yaml and an empty secrets file interlog.env, installs
# and starts interlog.service. Upgrade: checks the bundle, replaces the binary
# atomically (rename), keeps the config, the secrets and the data in
# /var/lib/interlog, and restarts the service. Running it again with the same
# bundle changes nothing. POSIX sh, so it also runs under busybox.
set -eu

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

prefix=""
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -n "$prefix" ]; then
  case "$prefix" in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
  prefix=${prefix%/}
fi

say() { echo "install.sh: $*"; }
fail() { echo "install.sh: error: $*" >&2; exit 1; }
# Every change goes through run (or put_file): under --dry-run it is printed instead.
run() {
  if [ "$dry_run" = 1 ]; then echo "would: $*"; else "$@"; fi
}

bundle=$(cd "$(dirname "$0")" && pwd)
bin_dir=$prefix/usr/local/bin
etc_dir=$prefix/etc/interlog
unit_dir=$prefix/etc/systemd/system
sysusers_dir=$prefix/usr/lib/sysusers.d
share_dir=$prefix/usr/local/share/interlog
data_dir=$prefix/var/lib/interlog
binary=$bin_dir/interlog
live=0
if [ -z "$prefix" ]; then live=1; fi

# 1. The bundle must be complete and unchanged.
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is missing; it is needed to check the bundle"
for f in interlog interlog.yaml interlog.service install.sh VERSION MANIFEST; do
  [ -f "$bundle/$f" ] || fail "the bundle lacks $f; unpack the whole interlog-*.tar.gz again"
done
if ! (cd "$bundle" && sha256sum -c MANIFEST >/dev/null 2>&1); then
  (cd "$bundle" && sha256sum -c MANIFEST 2>&1 | grep -v ': OK$') >&2 || true
  fail "the bundle does not match its MANIFEST (damaged download or unpack); nothing was installed"
fi
field() { sed -n "s/^$1=//p" "$2"; }
version=$(field version "$bundle/VERSION")
target=$(field target "$bundle/VERSION")
commit=$(field commit "$bundle/VERSION")
interpreter=$(field interpreter "$bundle/VERSION")
[ -n "$version" ] && [ -n "$target" ] || fail "VERSION has no version or target"

# 2. On this machine: root, and a binary that runs here.
if [ "$live" = 1 ]; then
  if [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then fail "run as root (sudo $0), or use --dry-run or --prefix DIR"; fi
  if [ -n "$interpreter" ] && [ ! -e "$interpreter" ]; then
    fail "this bundle is for $target and needs $interpreter, which this machine lacks; use the bundle for this machine's architecture and libc (uname -m: $(uname -m))"
  fi
  if ! run_error=$("$bundle/interlog" version 2>&1 >/dev/null); then
    # The loader names what is missing, e.g. libstdc++.so.6 on a board without the C++ runtime.
    fail "the bundle's binary does not run on this machine (bundle target $target, uname -m: $(uname -m)): $run_error"
  fi
fi

previous=""
if [ -f "$share_dir/VERSION" ]; then previous="$(field version "$share_dir/VERSION") ($(field commit "$share_dir/VERSION"))"; fi
first_install=1
if [ -e "$binary" ]; then first_install=0; fi
changed=0

tmp=""
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT

# Writes src to dest with mode when dest differs: a temp file in dest's directory renamed over it.
put_file() {
  src=$1 dest=$2 mode=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then return 1; fi
  if [ "$dry_run" = 1 ]; then echo "would: install $src as $dest (mode $mode)"; return 0; fi
  tmp=$(dirname "$dest")/.$(basename "$dest").new.$$
  cp "$src" "$tmp"
  chmod "$mode" "$tmp"
  # On disk before the rename makes it visible (a power cut must not leave an empty binary).
  sync "$tmp" 2>/dev/null || sync
  mv -f "$tmp" "$dest"
  tmp=""
  return 0
}

make_dir() {
  dir=$1 mode=$2
  if [ ! -d "$dir" ]; then
    run mkdir -p "$dir"
    run chmod "$mode" "$dir"
  elif [ "$(stat -c %a "$dir")" != "${mode#0}" ]; then
    run chmod "$mode" "$dir"
  fi
}

# 3. The user the service runs as (systemd-sysusers makes it too, for images built with --prefix).
if [ "$live" = 1 ] && ! id -u interlog >/dev/null 2>&1; then
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  if command -v useradd >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir /var/lib/interlog --no-create-home --shell "$nologin" --comment "InterLog replica" interlog
  elif command -v adduser >/dev/null 2>&1; then
    run addgroup -S interlog
    run adduser -S -D -H -h /var/lib/interlog -s "$nologin" -G interlog -g "InterLog replica" interlog
  else
    fail "neither useradd nor adduser is available to create the user interlog"
  fi
fi

# 4. Directories. The config directory is world-readable: secrets live only in interlog.env.
make_dir "$bin_dir" 0755
make_dir "$etc_dir" 0755
make_dir "$unit_dir" 0755
make_dir "$sysusers_dir" 0755
make_dir "$share_dir" 0755
make_dir "$data_dir" 0750
if [ "$live" = 1 ] && { [ ! -d "$data_dir" ] || [ "$(stat -c %U:%G "$data_dir")" != interlog:interlog ]; }; then
  run chown interlog:interlog "$data_dir"
fi

# 5. Config and secrets: written only when absent, so an upgrade keeps them.
if [ ! -e "$etc_dir/interlog.yaml" ]; then
  put_file "$bundle/interlog.yaml" "$etc_dir/interlog.yaml" 0644 || true
  if [ "$dry_run" = 0 ]; then say "created $etc_dir/interlog.yaml: edit it, then restart interlog.service"; fi
fi
# The shipped default beside it, to compare with after an upgrade.
put_file "$bundle/interlog.yaml" "$etc_dir/interlog.yaml.default" 0644 || true
if [ ! -e "$etc_dir/interlog.env" ]; then
  if [ "$dry_run" = 1 ]; then
    echo "would: create $etc_dir/interlog.env (mode 0600)"
  else
    (umask 077 && printf '%s\n' "# Secrets for interlog.service, KEY=value, read by systemd as root." \
      "# INTERLOG_MQTT_PASSWORD=" "# INTERLOG_ADMIN_TOKEN=" > "$etc_dir/interlog.env")
  fi
fi

# 6. The unit and the sysusers entry.
unit_changed=0
if put_file "$bundle/interlog.service" "$unit_dir/interlog.service" 0644; then unit_changed=1; changed=1; fi
sysusers_line='u interlog - "InterLog replica" /var/lib/interlog'
if [ "$(cat "$sysusers_dir/interlog.conf" 2>/dev/null || true)" != "$sysusers_line" ]; then
  if [ "$dry_run" = 1 ]; then
    echo "would: write $sysusers_dir/interlog.conf (mode 0644)"
  else
    tmp=$sysusers_dir/.interlog.conf.new.$$
    printf '%s\n' "$sysusers_line" > "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$sysusers_dir/interlog.conf"
    tmp=""
  fi
fi

# 7. The binary, swapped by one rename: the running service keeps the old file until it restarts.
if put_file "$bundle/interlog" "$binary" 0755; then changed=1; fi
put_file "$bundle/VERSION" "$share_dir/VERSION" 0644 || true
put_file "$bundle/MANIFEST" "$share_dir/MANIFEST" 0644 || true

# 8. The service.
if [ "$live" = 1 ]; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if [ "$unit_changed" = 1 ]; then run systemctl daemon-reload; fi
    if [ "$first_install" = 1 ]; then
      run systemctl enable --now interlog.service
    elif [ "$changed" = 1 ]; then
      if systemctl is-enabled --quiet interlog.service; then
        run systemctl restart interlog.service
      else
        say "interlog.service is disabled; not restarting it (systemctl enable --now interlog)"
      fi
    fi
  else
    say "systemd is not running here; start the replica with: $binary serve --config /etc/interlog/interlog.yaml"
  fi
elif [ "$first_install" = 1 ]; then
  # What `systemctl enable` does, for an image: the service starts on its first boot.
  wants=$unit_dir/multi-user.target.wants
  make_dir "$wants" 0755
  if [ ! -L "$wants/interlog.service" ]; then run ln -s /etc/systemd/system/interlog.service "$wants/interlog.service"; fi
fi

if [ "$first_install" = 1 ]; then
  what="installed"
elif [ "$changed" = 1 ]; then
  what="upgraded from ${previous:-an unknown version}"
else
  what="already installed, nothing changed"
fi
if [ -n "$prefix" ]; then what="$what under $prefix"; fi
if [ "$dry_run" = 1 ]; then what="$what (dry run: nothing was changed)"; fi
say "interlog $version ($commit) for $target: $what"
