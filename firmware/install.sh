#!/bin/sh
# Installs or upgrades InterLog from an unpacked firmware bundle:
#
#   sudo ./install.sh              install on this machine and (re)start the service
#   ./install.sh --dry-run         print what would change, change nothing
#   ./install.sh --prefix DIR      install into the root file system at DIR (an image
#                                  being built, or a test): no user (systemd-sysusers makes
#                                  it at boot), no chown, no systemctl; enabled by a link
#   --bundle DIR                   install the bundle unpacked at DIR, not the one this script
#                                  is in: upgrade with the copy the last install kept,
#                                  /usr/local/share/interlog/install.sh --bundle DIR
#   --release-key FILE             require MANIFEST.sig signed by this public key (PEM), and keep
#                                  it as /etc/interlog/release.pub when the device has none
#
# Signed bundles: when the device has a release key (/etc/interlog/release.pub, under DIR
# with --prefix) or --release-key names one, the bundle must carry MANIFEST.sig, an Ed25519
# signature of MANIFEST by that key, checked by /usr/local/bin/interlog of this machine (the
# installed one, never the bundle's), else by openssl (3 or newer); otherwise nothing is installed.
#
# First install: creates the user "interlog", the directories, the config
# /etc/interlog/interlog.yaml and an empty secrets file interlog.env, installs
# the browser replica page in /usr/local/share/interlog/app (served at /app/
# with admin.app: true), installs and starts interlog.service. Upgrade: checks
# the bundle, replaces the binary atomically (rename) and the page directory
# (by two renames), keeps the config, the secrets and the data in
# /var/lib/interlog, and restarts the service. Running it again with the same
# bundle changes nothing. It never creates, chmods, chowns or writes through a
# symlink it did not make, and writes each file as a temp file with an
# unpredictable name renamed into place. POSIX sh, so it also runs under busybox.
set -eu

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}
say() { echo "install.sh: $*"; }
fail() { echo "install.sh: error: $*" >&2; exit 1; }

prefix=""
dry_run=0
bundle=""
release_key=""
needs_value() { [ "$1" -ge 2 ] || { echo "install.sh: $2 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) needs_value $# "$1"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --bundle) needs_value $# "$1"; bundle=$2; shift 2 ;;
    --bundle=*) bundle=${1#--bundle=}; shift ;;
    --release-key) needs_value $# "$1"; release_key=$2; shift 2 ;;
    --release-key=*) release_key=${1#--release-key=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -n "$prefix" ]; then
  case "$prefix" in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
  prefix=${prefix%/}
fi

# Every change goes through run (or put_file): under --dry-run it is printed instead.
run() {
  if [ "$dry_run" = 1 ]; then echo "would: $*"; else "$@"; fi
}

if [ -z "$bundle" ]; then bundle=$(dirname "$0"); fi
[ -d "$bundle" ] || fail "--bundle $bundle: no such directory"
bundle=$(cd "$bundle" && pwd)
bin_dir=$prefix/usr/local/bin
etc_dir=$prefix/etc/interlog
unit_dir=$prefix/etc/systemd/system
sysusers_dir=$prefix/usr/lib/sysusers.d
share_dir=$prefix/usr/local/share/interlog
app_dir=$share_dir/app
# The browser page: the files of app/ in the bundle, the same set serve requires.
app_files="app.js index.html sw.js ui.js"
data_dir=$prefix/var/lib/interlog
wants=$unit_dir/multi-user.target.wants
binary=$bin_dir/interlog
device_key=$etc_dir/release.pub
live=0
if [ -z "$prefix" ]; then live=1; fi
first_install=1
if [ -e "$binary" ]; then first_install=0; fi

# 1. No symlink in the way. Everything install.sh creates, chmods, chowns or writes is checked
# before the first change, so a refusal leaves the system as it was.
not_link() {
  if [ -L "$1" ]; then
    fail "$1 is a symlink (to $(readlink "$1")); install.sh does not create, chmod, chown or write through symlinks it did not make. Make it a real directory or file (a bind mount keeps it on another disk) and run install.sh again${2:+; $2}"
  fi
}
# Under --prefix every directory from DIR down: an image tree may hold links, even absolute ones
# that lead back into the build machine. On a live system the directory itself: the system's own
# layout above it is root's (on OSTree /usr/local is a link).
check_dir() {
  if [ -n "$prefix" ]; then
    rest=${1#"$prefix"/}
    at=$prefix
    while [ -n "$rest" ]; do
      at=$at/${rest%%/*}
      case "$rest" in */*) rest=${rest#*/} ;; *) rest="" ;; esac
      not_link "$at" "${2:-}"
      if [ -e "$at" ] && [ ! -d "$at" ]; then fail "$at is not a directory${2:+; $2}"; fi
    done
  else
    not_link "$1" "${2:-}"
    if [ -e "$1" ] && [ ! -d "$1" ]; then fail "$1 is not a directory${2:+; $2}"; fi
  fi
}
unchanged="nothing was changed"
for d in "$bin_dir" "$etc_dir" "$unit_dir" "$sysusers_dir" "$share_dir" "$app_dir" "$data_dir"; do check_dir "$d" "$unchanged"; done
if [ "$live" = 0 ] && [ "$first_install" = 1 ]; then check_dir "$wants" "$unchanged"; fi
# Files replaced by rename when they differ.
for f in "$binary" "$etc_dir/interlog.yaml.default" "$unit_dir/interlog.service" "$sysusers_dir/interlog.conf" \
  "$share_dir/VERSION" "$share_dir/MANIFEST" "$share_dir/MANIFEST.sig" "$share_dir/install.sh"; do
  not_link "$f" "$unchanged"
  if [ -d "$f" ]; then fail "$f is a directory; $unchanged"; fi
done
# Files written only when absent (an upgrade keeps them): a link to nowhere there would be written through.
for f in "$etc_dir/interlog.yaml" "$etc_dir/interlog.env" "$device_key"; do
  if [ ! -e "$f" ]; then not_link "$f" "$unchanged"; fi
done

tmp=""
work=""
app_new=""
app_old=""
cleanup() {
  if [ -n "$tmp" ]; then rm -f "$tmp"; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
  if [ -n "$app_new" ]; then rm -rf "$app_new"; fi
  if [ -n "$app_old" ]; then rm -rf "$app_old"; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# 2. The bundle must be complete, signed when this device has a release key, and unchanged.
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is missing; it is needed to check the bundle"
command -v mktemp >/dev/null 2>&1 || fail "mktemp is missing; it is needed for safe temp files"
for f in interlog interlog.yaml interlog.service install.sh VERSION MANIFEST; do
  [ -f "$bundle/$f" ] || fail "the bundle lacks $f; unpack the whole interlog-*.tar.gz again (or name its directory with --bundle DIR)"
done
# MANIFEST, its signature and the key are copied into a private directory (mktemp -d, mode 0700):
# what was verified is what the files are checked against and what is recorded.
work=$(mktemp -d) || fail "cannot make a temp directory"
cp "$bundle/MANIFEST" "$work/MANIFEST"
signed=0
if [ -f "$bundle/MANIFEST.sig" ]; then cp "$bundle/MANIFEST.sig" "$work/MANIFEST.sig"; signed=1; fi

key=""
install_key=0
if [ -n "$release_key" ]; then
  [ -f "$release_key" ] || fail "--release-key $release_key: no such file"
  if [ -e "$device_key" ] || [ -L "$device_key" ]; then
    cmp -s "$release_key" "$device_key" || fail "--release-key $release_key differs from $device_key, the release key this device already trusts; to change keys replace $device_key by hand; $unchanged"
  else
    install_key=1
  fi
  key=$release_key
elif [ -e "$device_key" ] || [ -L "$device_key" ]; then
  key=$device_key
fi

# The judge of a signature is a program of this machine, never one from the bundle (its binary
# would vouch for its own bundle) nor, with --prefix, from the image tree (running that as root would
# hand the build machine to whoever made the tree): the interlog installed here, trusted since its own
# install (on a live system the binary being upgraded), else openssl.
judge=/usr/local/bin/interlog
verified_by=""
verify_signature() {
  m=$work/MANIFEST s=$work/MANIFEST.sig k=$work/release.pub
  no_judge="there is no $judge on this machine"
  if [ -f "$judge" ] && [ -x "$judge" ]; then
    rc=0
    out=$("$judge" verify-manifest --key "$k" --manifest "$m" --signature "$s" 2>&1) || rc=$?
    case $rc in
      0) verified_by=$judge; return 0 ;;
      1) fail "the bundle's MANIFEST.sig does not verify with the release key $key (checked by $judge): ${out#interlog verify-manifest: }; $unchanged" ;;
    esac
    # Any other exit: an interlog too old to know verify-manifest (2), or one that cannot run (126, 127).
    no_judge="$judge cannot check it (exit $rc)"
  fi
  if command -v openssl >/dev/null 2>&1; then
    if out=$(openssl pkeyutl -verify -pubin -inkey "$k" -rawin -in "$m" -sigfile "$s" 2>&1); then verified_by=openssl; return 0; fi
    case "$out" in *"Verification Failure"*) ;; *) out="$out (Ed25519 needs OpenSSL 3 or newer)" ;; esac
    fail "the bundle's MANIFEST.sig does not verify with the release key $key (checked by openssl): $out; $unchanged"
  fi
  fail "a release key is configured ($key) but nothing here can check the bundle's signature: $no_judge, and openssl is missing. Install openssl (3 or newer) and run install.sh again; $unchanged"
}
if [ -n "$key" ]; then
  [ -r "$key" ] || fail "cannot read the release key $key; $unchanged"
  cp "$key" "$work/release.pub"
  [ "$signed" = 1 ] || fail "the bundle has no MANIFEST.sig, but this device installs only bundles signed with the release key $key (build them with INTERLOG_RELEASE_KEY_FILE set); $unchanged"
  verify_signature
  say "MANIFEST.sig verified with the release key $key (by $verified_by)"
elif [ "$signed" = 1 ]; then
  say "MANIFEST.sig not checked: no release key configured ($device_key, or --release-key FILE)"
fi

if ! (cd "$bundle" && sha256sum -c "$work/MANIFEST" >/dev/null 2>&1); then
  (cd "$bundle" && sha256sum -c "$work/MANIFEST" 2>&1 | grep -v ': OK$') >&2 || true
  fail "the bundle does not match its MANIFEST (damaged download or unpack); nothing was installed"
fi
manifest_sum() { awk -v f="$1" '$2 == f { print $1; exit }' "$work/MANIFEST"; }
for f in interlog interlog.yaml interlog.service install.sh VERSION; do
  [ -n "$(manifest_sum "$f")" ] || fail "MANIFEST does not list $f; nothing was installed"
done
# The page comes with bundles built since it exists; an older bundle (a downgrade) has none, and the
# installed page is left as it is. MANIFEST lists all of its files or none.
has_app=0
if [ -n "$(manifest_sum app/index.html)" ]; then has_app=1; fi
for f in $app_files; do
  if [ "$has_app" = 1 ] && [ -z "$(manifest_sum "app/$f")" ]; then fail "MANIFEST lists app/index.html but not app/$f; nothing was installed"; fi
  if [ "$has_app" = 0 ] && [ -n "$(manifest_sum "app/$f")" ]; then fail "MANIFEST lists app/$f but not app/index.html; nothing was installed"; fi
done
field() { sed -n "s/^$1=//p" "$2"; }
version=$(field version "$bundle/VERSION")
target=$(field target "$bundle/VERSION")
commit=$(field commit "$bundle/VERSION")
interpreter=$(field interpreter "$bundle/VERSION")
[ -n "$version" ] && [ -n "$target" ] || fail "VERSION has no version or target"

# 3. On this machine: root, and a binary that runs here.
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
changed=0

# A new temp file beside $1: mktemp picks an unpredictable name and creates it exclusively
# (mode 0600), so a file or link planted in advance is never opened.
new_temp() {
  tmp=$(mktemp "$(dirname "$1")/.$(basename "$1").XXXXXX") || fail "cannot create a temp file beside $1"
}
sha256_of() {
  sum=$(sha256sum "$1")
  echo "${sum%% *}"
}
# Writes src to dest with mode when dest differs: a temp file in dest's directory, checked against
# MANIFEST's sha256 (when given) and synced, then renamed over dest.
put_file() {
  src=$1 dest=$2 mode=$3 want=${4:-}
  not_link "$dest"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then return 1; fi
  if [ "$dry_run" = 1 ]; then echo "would: install $src as $dest (mode $mode)"; return 0; fi
  new_temp "$dest"
  cp "$src" "$tmp"
  chmod "$mode" "$tmp"
  if [ -n "$want" ] && [ "$(sha256_of "$tmp")" != "$want" ]; then
    fail "$src changed after the bundle was checked (its sha256 no longer matches MANIFEST); unpack the bundle again and rerun"
  fi
  # On disk before the rename makes it visible (a power cut must not leave an empty binary).
  sync "$tmp" 2>/dev/null || sync
  mv -f "$tmp" "$dest"
  tmp=""
  return 0
}

make_dir() {
  dir=$1 mode=$2
  check_dir "$dir"
  if [ ! -d "$dir" ]; then
    run mkdir -p "$dir"
    run chmod "$mode" "$dir"
  elif [ "$(stat -c %a "$dir")" != "${mode#0}" ]; then
    run chmod "$mode" "$dir"
  fi
}

# 4. The user the service runs as (systemd-sysusers makes it too, for images built with --prefix).
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

# 5. Directories. The config directory is world-readable: secrets live only in interlog.env.
make_dir "$bin_dir" 0755
make_dir "$etc_dir" 0755
make_dir "$unit_dir" 0755
make_dir "$sysusers_dir" 0755
make_dir "$share_dir" 0755
make_dir "$data_dir" 0750
if [ "$live" = 1 ] && { [ ! -d "$data_dir" ] || [ "$(stat -c %U:%G "$data_dir")" != interlog:interlog ]; }; then
  not_link "$data_dir"
  run chown interlog:interlog "$data_dir"
fi

# 6. Config, secrets and the release key: written only when absent, so an upgrade keeps them.
if [ ! -e "$etc_dir/interlog.yaml" ]; then
  put_file "$bundle/interlog.yaml" "$etc_dir/interlog.yaml" 0644 "$(manifest_sum interlog.yaml)" || true
  if [ "$dry_run" = 0 ]; then say "created $etc_dir/interlog.yaml: edit it, then restart interlog.service"; fi
fi
# The shipped default beside it, to compare with after an upgrade.
put_file "$bundle/interlog.yaml" "$etc_dir/interlog.yaml.default" 0644 "$(manifest_sum interlog.yaml)" || true
if [ ! -e "$etc_dir/interlog.env" ]; then
  not_link "$etc_dir/interlog.env"
  if [ "$dry_run" = 1 ]; then
    echo "would: create $etc_dir/interlog.env (mode 0600)"
  else
    new_temp "$etc_dir/interlog.env"
    printf '%s\n' "# Secrets for interlog.service, KEY=value, read by systemd as root." \
      "# INTERLOG_MQTT_PASSWORD=" "# INTERLOG_ADMIN_TOKEN=" > "$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$etc_dir/interlog.env"
    tmp=""
  fi
fi
if [ "$install_key" = 1 ]; then
  if [ "$dry_run" = 1 ]; then
    echo "would: install $release_key as $device_key (mode 0644)"
  else
    put_file "$work/release.pub" "$device_key" 0644 || true
    say "kept the release key as $device_key: from now on only bundles signed with it are installed"
  fi
fi

# 7. The unit and the sysusers entry.
unit_changed=0
if put_file "$bundle/interlog.service" "$unit_dir/interlog.service" 0644 "$(manifest_sum interlog.service)"; then unit_changed=1; changed=1; fi
sysusers_line='u interlog - "InterLog replica" /var/lib/interlog'
if [ "$(cat "$sysusers_dir/interlog.conf" 2>/dev/null || true)" != "$sysusers_line" ]; then
  if [ "$dry_run" = 1 ]; then
    echo "would: write $sysusers_dir/interlog.conf (mode 0644)"
  else
    not_link "$sysusers_dir/interlog.conf"
    new_temp "$sysusers_dir/interlog.conf"
    printf '%s\n' "$sysusers_line" > "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$sysusers_dir/interlog.conf"
    tmp=""
  fi
fi

# 8. The browser page, before the binary that serves it: a new directory beside app, each file checked
# against MANIFEST and synced, then the old directory renamed aside and the new one renamed in (a
# directory cannot be renamed over a full one; serve reads the files per request, so at worst a
# request in the instant between the two renames gets a 404, and a new page needs no restart).
app_current=1
app_changed=0
if [ "$has_app" = 0 ] && [ -d "$app_dir" ]; then
  say "the bundle has no browser page (app/: it predates the page); $app_dir is left as it is"
elif [ "$has_app" = 1 ]; then
  if [ ! -d "$app_dir" ]; then app_current=0; fi
  for f in $app_files; do
    if [ "$app_current" = 1 ] && { [ -L "$app_dir/$f" ] || ! cmp -s "$bundle/app/$f" "$app_dir/$f"; }; then app_current=0; fi
  done
fi
if [ "$app_current" = 0 ] && [ "$dry_run" = 1 ]; then
  echo "would: install $bundle/app ($app_files) as $app_dir (mode 0755, files 0644), replacing it by rename"
  app_changed=1
elif [ "$app_current" = 0 ]; then
  app_new=$(mktemp -d "$share_dir/.app.XXXXXX") || fail "cannot create a temp directory beside $app_dir"
  for f in $app_files; do
    cp "$bundle/app/$f" "$app_new/$f"
    chmod 0644 "$app_new/$f"
    if [ "$(sha256_of "$app_new/$f")" != "$(manifest_sum "app/$f")" ]; then
      fail "$bundle/app/$f changed after the bundle was checked (its sha256 no longer matches MANIFEST); unpack the bundle again and rerun"
    fi
  done
  chmod 0755 "$app_new"
  (cd "$app_new" && sync $app_files . 2>/dev/null) || sync
  check_dir "$app_dir"
  if [ -d "$app_dir" ]; then
    # Aside into a private directory of its own (mktemp -d), so the name it goes to cannot be planted.
    app_old=$(mktemp -d "$share_dir/.app-old.XXXXXX") || fail "cannot create a temp directory beside $app_dir"
    mv "$app_dir" "$app_old/app"
  fi
  mv "$app_new" "$app_dir"
  app_new=""
  if [ -n "$app_old" ]; then rm -rf "$app_old"; app_old=""; fi
  app_changed=1
fi

# 9. The binary, swapped by one rename: the running service keeps the old file until it restarts.
# Then the record of the bundle, with its install.sh: the trusted installer of the next upgrade.
if put_file "$bundle/interlog" "$binary" 0755 "$(manifest_sum interlog)"; then changed=1; fi
put_file "$bundle/VERSION" "$share_dir/VERSION" 0644 "$(manifest_sum VERSION)" || true
put_file "$bundle/install.sh" "$share_dir/install.sh" 0755 "$(manifest_sum install.sh)" || true
put_file "$work/MANIFEST" "$share_dir/MANIFEST" 0644 || true
if [ "$signed" = 1 ]; then
  put_file "$work/MANIFEST.sig" "$share_dir/MANIFEST.sig" 0644 || true
elif [ -e "$share_dir/MANIFEST.sig" ]; then
  not_link "$share_dir/MANIFEST.sig"
  run rm -f "$share_dir/MANIFEST.sig"
fi

# 10. The service.
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
  make_dir "$wants" 0755
  if [ ! -L "$wants/interlog.service" ]; then run ln -s /etc/systemd/system/interlog.service "$wants/interlog.service"; fi
fi

if [ "$first_install" = 1 ]; then
  what="installed"
elif [ "$changed" = 1 ] || [ "$app_changed" = 1 ]; then
  what="upgraded from ${previous:-an unknown version}"
else
  what="already installed, nothing changed"
fi
if [ -n "$prefix" ]; then what="$what under $prefix"; fi
if [ "$dry_run" = 1 ]; then what="$what (dry run: nothing was changed)"; fi
say "interlog $version ($commit) for $target: $what"
