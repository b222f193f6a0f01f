#!/usr/bin/env bash
# install.sh: install PMB on a Debian or Raspberry Pi OS (64-bit) machine as a systemd service.
#
#   curl -fsSL https://RELEASES/install.sh | sudo bash                  # latest release
#   sudo bash install.sh --from ./pmb-linux-arm64                       # a binary you already have
#   bash install.sh --prefix ~/pmb-test --no-systemd --from ./pmb-linux-x64   # no root, no service
#   sudo bash install.sh --uninstall [--purge]                          # remove (keeps data unless --purge)
#
# Run it again to upgrade: the binary is replaced atomically and the service restarted; the data in
# /var/lib/pmb and the config /etc/pmb/pmb.toml are kept. `bash install.sh --help` lists every option.
#
# Everything happens inside main(), called on the very last line: when this script is piped from curl,
# a download cut short defines functions and runs nothing.
if [ -z "${BASH_VERSION:-}" ]; then
  echo 'install.sh needs bash: run it as  sudo bash install.sh  (or  curl ... | sudo bash)' >&2
  exit 1
fi
set -euo pipefail

# Where releases live: <PMB_RELEASE_URL>/pmb-linux-x64, <PMB_RELEASE_URL>/pmb-linux-arm64 and the manifest
# <PMB_RELEASE_URL>/SHA256SUMS (lines of `sha256sum` output). Set when releases are published.
PMB_RELEASE_URL="${PMB_RELEASE_URL:-https://releases.pmb.invalid/latest}"
SUMS_NAME=SHA256SUMS
SERVICE=pmb.service
SERVICE_USER=pmb
DEFAULT_PORT=8447
HEALTH_TIMEOUT_S=20

# ---------------------------------------------------------------------------------------------------------
# Messages

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Usage: install.sh [options]

Installs (or upgrades) PMB: the `pmb` binary in /usr/local/bin, a `pmb` system user, the data directory
/var/lib/pmb, the config /etc/pmb/pmb.toml (only if missing: an edited config is never overwritten) and
a hardened systemd service `pmb`, which it starts; then it waits until the server answers and prints the
address to open for the first-run setup. Running it again upgrades the binary and restarts the service,
keeping data and config. Needs root, except with --prefix.

Where the binary comes from (default: the release for this machine, from $PMB_RELEASE_URL):
  --from FILE         install this local binary (e.g. pmb-linux-arm64)
  --from-url URL      download the binary from URL (a URL ending in / is a release directory:
                      pmb-linux-x64 or pmb-linux-arm64 is appended)
  --sha256 HEX        the binary's expected SHA-256. Without it, a download is checked against the
                      release manifest SHA256SUMS next to it, when there is one.
  --arch ARCH         act as if `uname -m` printed ARCH (x86_64, aarch64, ...), for testing

Where it goes:
  --prefix DIR        install everything under DIR (DIR/usr/local/bin/pmb, DIR/etc/pmb/pmb.toml,
                      DIR/var/lib/pmb) as the current user: no root, no system user, no systemd
  --no-systemd        do not install or start the systemd service (implied by --prefix); prints how to
                      start the server by hand

Removing:
  --uninstall         stop and disable the service, remove the binary and the unit; keep the data
                      (/var/lib/pmb) and the config (/etc/pmb)
  --purge             with --uninstall: also delete the data, the config and the pmb user. Every
                      account and message on this server is lost. Asks first, unless --yes.
  -y, --yes           do not ask

Other:
  --print-unit        print the systemd unit this script installs, and exit
  -h, --help          this help

Supported: Linux on x86_64 (linux-x64) and on 64-bit ARM (linux-arm64: Raspberry Pi 3, 4, 5, Zero 2 W
with the 64-bit Raspberry Pi OS). 32-bit ARM (armhf, armv7l, armv6l) is not supported yet.
EOF
}

# ---------------------------------------------------------------------------------------------------------
# Arguments (never evaluated: each value is only ever used as one quoted word)

FROM=''
FROM_URL=''
SHA256=''
ARCH_OVERRIDE=''
PREFIX=''
PREFIX_SET=0
NO_SYSTEMD=0
UNINSTALL=0
PURGE=0
YES=0
PRINT_UNIT=0

parse_args() {
  local opt val
  while [ "$#" -gt 0 ]; do
    opt=$1
    val=''
    case $opt in
      --*=*)
        val=${opt#*=}
        opt=${opt%%=*}
        case $opt in
          --from | --from-url | --sha256 | --arch | --prefix) ;;
          *) die "$opt takes no value (see --help)" ;;
        esac
        ;;
      --from | --from-url | --sha256 | --arch | --prefix)
        [ "$#" -ge 2 ] || die "$opt needs a value (see --help)"
        case $2 in --*) die "$opt needs a value, not the option $2 (see --help)" ;; esac
        val=$2
        shift
        ;;
    esac
    case $opt in
      --from) FROM=$val ;;
      --from-url) FROM_URL=$val ;;
      --sha256) SHA256=$val ;;
      --arch) ARCH_OVERRIDE=$val ;;
      --prefix)
        PREFIX=$val
        PREFIX_SET=1
        ;;
      --no-systemd) NO_SYSTEMD=1 ;;
      --uninstall) UNINSTALL=1 ;;
      --purge) PURGE=1 ;;
      -y | --yes) YES=1 ;;
      --print-unit) PRINT_UNIT=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown option: $opt (see --help)" ;;
    esac
    shift
  done

  [ -z "$FROM" ] || [ -z "$FROM_URL" ] || die "--from and --from-url: give one or the other"
  [ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge goes with --uninstall"
  if [ "$UNINSTALL" -eq 1 ] && { [ -n "$FROM" ] || [ -n "$FROM_URL" ] || [ -n "$SHA256" ]; }; then
    die "--uninstall takes no --from, --from-url or --sha256"
  fi
  if [ -n "$SHA256" ]; then
    SHA256=$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')
    case $SHA256 in
      *[!0-9a-f]*) die "--sha256: '$SHA256' is not a SHA-256 (64 hexadecimal digits)" ;;
    esac
    [ "${#SHA256}" -eq 64 ] || die "--sha256: '$SHA256' is not a SHA-256 (64 hexadecimal digits)"
  fi
  [ "$PREFIX_SET" -eq 0 ] || NO_SYSTEMD=1
  return 0
}

# ---------------------------------------------------------------------------------------------------------
# Layout

BIN_DIR=''
BIN=''
ETC_DIR=''
CONFIG=''
DATA_DIR=''
UNIT_DIR=/etc/systemd/system
UNIT=$UNIT_DIR/$SERVICE

set_layout() {
  if [ "$PREFIX_SET" -eq 1 ]; then
    [ -n "$PREFIX" ] || die "--prefix needs a directory"
    case $PREFIX in
      *'"'* | *\\* | *[[:cntrl:]]*)
        die "--prefix: '$PREFIX' holds a quote, backslash or control character; pick a plainer directory"
        ;;
    esac
    if [ "$PRINT_UNIT" -eq 0 ]; then
      mkdir -p -- "$PREFIX" || die "cannot create the prefix directory $PREFIX"
    fi
    if [ -d "$PREFIX" ]; then
      PREFIX=$(cd -- "$PREFIX" && pwd -P)
    fi
    PREFIX=${PREFIX%/}
  fi
  BIN_DIR=$PREFIX/usr/local/bin
  BIN=$BIN_DIR/pmb
  ETC_DIR=$PREFIX/etc/pmb
  CONFIG=$ETC_DIR/pmb.toml
  DATA_DIR=$PREFIX/var/lib/pmb
}

# x86_64 -> linux-x64, aarch64/arm64 -> linux-arm64; anything else is refused with what is supported.
ARCH=''
detect_arch() {
  local machine userland
  if [ -z "$ARCH_OVERRIDE" ] && [ "$(uname -s)" != Linux ]; then
    die "PMB's installer is for Linux (Debian, Raspberry Pi OS); this is $(uname -s)"
  fi
  machine=${ARCH_OVERRIDE:-$(uname -m)}
  case $machine in
    x86_64 | amd64) ARCH=linux-x64 ;;
    aarch64 | arm64 | armv8b | aarch64_be) ARCH=linux-arm64 ;;
    armv6* | armv7* | armv8l | armhf | armel | arm)
      die "32-bit ARM ($machine) is not supported yet. PMB runs on linux-x64 (x86_64) and linux-arm64 (aarch64). On a Raspberry Pi 3, 4, 5 or Zero 2 W, install the 64-bit Raspberry Pi OS."
      ;;
    *)
      die "unsupported architecture '$machine'. PMB runs on linux-x64 (x86_64) and linux-arm64 (aarch64/arm64)."
      ;;
  esac
  # The 32-bit Raspberry Pi OS boots a 64-bit kernel on a Pi 4 or 5: uname says aarch64, but a 64-bit
  # program cannot run on its 32-bit userland.
  if [ -z "$ARCH_OVERRIDE" ] && [ "$ARCH" = linux-arm64 ] && command -v dpkg >/dev/null 2>&1; then
    userland=$(dpkg --print-architecture 2>/dev/null || true)
    case $userland in
      armhf | armel)
        die "this is a 32-bit OS ($userland) on a 64-bit kernel. PMB needs a 64-bit OS (linux-arm64): install the 64-bit Raspberry Pi OS."
        ;;
    esac
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------------------
# Small helpers

have() { command -v "$1" >/dev/null 2>&1; }

systemd_running() { [ -d /run/systemd/system ] && have systemctl; }

# Prints a word the way a shell reads it back (for the commands we tell the user to run).
shq() {
  case $1 in
    *[!A-Za-z0-9_./:=@+-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}

# fetch URL FILE: download with curl or wget, whichever exists; fails on HTTP errors.
fetch() {
  if have curl; then
    curl -fsSL --retry 3 --connect-timeout 20 -o "$2" -- "$1"
  elif have wget; then
    wget -q --tries=3 --timeout=20 -O "$2" -- "$1"
  else
    die "neither curl nor wget is installed: sudo apt-get install curl"
  fi
}

# http_status URL: prints the HTTP status code of a GET (000 when nothing answered).
http_status() {
  local code=''
  if have curl; then
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' -- "$1" 2>/dev/null || true)
  elif have wget; then
    code=$(wget -q -S -O /dev/null -T 3 -t 1 -- "$1" 2>&1 | awk '/^ *HTTP\// { c = $2 } END { print c }' || true)
  fi
  case $code in
    [0-9][0-9][0-9]) printf '%s' "$code" ;;
    *) printf '000' ;;
  esac
}

sha256_of() {
  if have sha256sum; then
    sha256sum -- "$1" | awk '{ print $1 }'
  elif have shasum; then
    shasum -a 256 -- "$1" | awk '{ print $1 }'
  else
    die "sha256sum is missing (it is in coreutils)"
  fi
}

# toml_value KEY FILE: the value of a top-level `KEY = value` line, quotes and comment stripped. Enough for
# the simple values install.sh wrote (port, host, data_dir); never evaluated.
toml_value() {
  [ -r "$2" ] || return 0
  awk -v key="$1" '
    /^[[:space:]]*\[/ { exit }
    {
      line = $0
      if (match(line, "^[[:space:]]*" key "[[:space:]]*=[[:space:]]*")) {
        v = substr(line, RLENGTH + 1)
        if (v ~ /^"/) { sub(/^"/, "", v); sub(/".*$/, "", v) } else { sub(/[[:space:]]*#.*$/, "", v); sub(/[[:space:]]+$/, "", v) }
        print v
        exit
      }
    }' "$2"
}

# Temporary files, removed on exit whatever happens (after a successful rename their names are gone).
TMP_BIN=''
TMP_SUMS=''
TMP_CONFIG=''
TMP_UNIT=''
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  rm -f -- ${TMP_BIN:+"$TMP_BIN"} ${TMP_SUMS:+"$TMP_SUMS"} ${TMP_CONFIG:+"$TMP_CONFIG"} ${TMP_UNIT:+"$TMP_UNIT"}
}

# ---------------------------------------------------------------------------------------------------------
# What gets written

config_text() {
  local restart='sudo systemctl restart pmb' moving='Under systemd the service may write only here
# (ProtectSystem=strict): to move it, also change ReadWritePaths and PMB_DATA_DIR with
# sudo systemctl edit pmb'
  if [ "$NO_SYSTEMD" -eq 1 ]; then
    restart='stop it with Ctrl-C and start it again'
    moving='Moving it means moving what is in it.'
  fi
  cat <<EOF
# PMB server configuration, read by: pmb serve --config $CONFIG
#
# install.sh wrote this file once and never overwrites it: edit away.
# After a change, restart the server ($restart).
# What first-run setup chooses (domain, registration) is saved in pmb.toml in the data dir, which
# wins over this file; command-line flags and PMB_* environment variables win over both.
# \`pmb config show\` prints what is in effect and where each value comes from.

# Address to listen on. 0.0.0.0 is every IPv4 interface, so phones and PCs on the home network can
# reach the server; 127.0.0.1 keeps it to this machine.
host = "0.0.0.0"

# TCP port for clients (WebSocket) and for /health and /.well-known/pmb. Ports above 1023 need no
# privileges.
port = $DEFAULT_PORT

# The server's database, key and admin token. Back this directory up.
# $moving
data_dir = "$DATA_DIR"

# Who may create an account: "open" (anyone who reaches the server), "invite" (with a one-time code
# from \`pmb invite\`) or "closed".
registration = "invite"

# The domain nicknames are registered under (nick@domain). Default: <hostname>.local
# domain = "home.example.org"

# fatal, error, warn, info, debug or silent.
# log_level = "info"

# The address clients should use when the server is reached through a name or proxy of its own.
# public_url = "wss://pmb.example.org"

# Serve TLS directly (otherwise put a reverse proxy in front and set trust_proxy = true).
# [tls]
# cert = "/etc/pmb/fullchain.pem"
# key = "/etc/pmb/privkey.pem"
EOF
}

unit_text() {
  cat <<EOF
# PMB server. Installed by install.sh, which rewrites this file on every upgrade: put local changes in a
# drop-in instead (sudo systemctl edit pmb). The config is $CONFIG, the data $DATA_DIR.
[Unit]
Description=PMB messenger server
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
ExecStart=$BIN serve --config $CONFIG
Environment=PMB_DATA_DIR=$DATA_DIR
WorkingDirectory=$DATA_DIR
Restart=on-failure
RestartSec=2s
TimeoutStopSec=30s
LimitNOFILE=65536

# Hardening: the server reads its config, writes only its data dir, and talks only IP (plus Unix
# sockets and netlink, which listing the network interfaces needs). Port $DEFAULT_PORT needs no capability.
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ReadWritePaths=$DATA_DIR
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectProc=invisible
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
SystemCallArchitectures=native
# MemoryDenyWriteExecute=yes is deliberately absent: pmb is a JavaScript runtime (Bun's JavaScriptCore)
# whose JIT compiler writes machine code into memory and then runs it; with it the server would crash.

[Install]
WantedBy=multi-user.target
EOF
}

# ---------------------------------------------------------------------------------------------------------
# Install

require_root_unless_prefix() {
  if [ "$PREFIX_SET" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "this installs a system service and needs root: run it with sudo (sudo bash install.sh ...), or use --prefix DIR --no-systemd for an install under DIR as yourself"
  fi
}

# Puts the new binary at a temporary name next to its destination (TMP_BIN) and checks it.
stage_binary() {
  local tmp url sums expected actual name out
  mkdir -p -- "$BIN_DIR"
  TMP_BIN=$(mktemp "$BIN_DIR/.pmb.new.XXXXXX") || die "cannot write to $BIN_DIR"
  tmp=$TMP_BIN
  if [ -n "$FROM" ]; then
    [ -e "$FROM" ] || die "--from $FROM: no such file"
    [ -f "$FROM" ] || die "--from $FROM: not a regular file"
    [ -r "$FROM" ] || die "--from $FROM: cannot read it"
    step "Installing $FROM"
    cp -- "$FROM" "$tmp"
    expected=$SHA256
  else
    url=${FROM_URL:-$PMB_RELEASE_URL/}
    case $url in */) url=${url}pmb-$ARCH ;; esac
    case $url in
      *.invalid/*)
        die "this install.sh names no release site yet ($PMB_RELEASE_URL): pass --from FILE (a pmb-$ARCH binary) or --from-url URL"
        ;;
    esac
    step "Downloading $url"
    fetch "$url" "$tmp" || die "could not download $url"
    expected=$SHA256
    if [ -z "$expected" ]; then
      TMP_SUMS=$(mktemp)
      sums=$TMP_SUMS
      name=${url##*/}
      name=${name%%\?*}
      if fetch "${url%/*}/$SUMS_NAME" "$sums" 2>/dev/null; then
        expected=$(awk -v n="$name" '{ f = $2; sub(/^\*/, "", f); if (f == n) { print tolower($1); exit } }' "$sums")
        [ -n "$expected" ] || die "the release manifest ${url%/*}/$SUMS_NAME has no checksum for $name"
      else
        warn "no release manifest at ${url%/*}/$SUMS_NAME: the download is not checked (pass --sha256 to check it)"
      fi
    fi
  fi
  if [ -n "$expected" ]; then
    actual=$(sha256_of "$tmp")
    [ "$actual" = "$expected" ] || die "SHA-256 mismatch: expected $expected, got $actual. Not installed."
    say "SHA-256 verified: $actual"
  fi
  chmod 0755 "$tmp"
  # It must run here before it replaces anything (a binary for another architecture, a truncated file).
  if ! out=$("$tmp" --version 2>&1 </dev/null); then
    die "the new binary does not run on this machine ($ARCH): $(printf '%s' "$out" | head -n 3). Not installed."
  fi
}

ensure_user() {
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    return 0
  fi
  have useradd || die "useradd is missing (package passwd)"
  step "Creating the system user $SERVICE_USER"
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin \
    --comment 'PMB messenger server' "$SERVICE_USER"
}

ensure_dirs() {
  if [ "$PREFIX_SET" -eq 1 ]; then
    install -d -m 0750 -- "$DATA_DIR"
    install -d -m 0755 -- "$ETC_DIR"
  else
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" -- "$DATA_DIR"
    install -d -m 0755 -o root -g root -- "$ETC_DIR"
  fi
}

ensure_config() {
  local tmp
  if [ -e "$CONFIG" ]; then
    say "Keeping the config $CONFIG (never overwritten)"
    return 0
  fi
  step "Writing $CONFIG"
  TMP_CONFIG=$(mktemp "$ETC_DIR/.pmb.toml.XXXXXX")
  tmp=$TMP_CONFIG
  config_text >"$tmp"
  chmod 0640 "$tmp"
  if [ "$PREFIX_SET" -eq 0 ]; then
    chown "root:$SERVICE_USER" "$tmp"
  fi
  mv -f -- "$tmp" "$CONFIG"
}

install_unit() {
  local tmp
  step "Writing $UNIT"
  mkdir -p -- "$UNIT_DIR"
  TMP_UNIT=$(mktemp "$UNIT_DIR/.pmb.service.XXXXXX")
  tmp=$TMP_UNIT
  unit_text >"$tmp"
  chmod 0644 "$tmp"
  mv -f -- "$tmp" "$UNIT"
}

# The port and the address to ask for /health, from the config (which the admin may have edited).
service_port() {
  local p
  p=$(toml_value port "$CONFIG")
  case $p in
    '' | *[!0-9]*) printf '%s' "$DEFAULT_PORT" ;;
    *) printf '%s' "$p" ;;
  esac
}
local_host() {
  local h
  h=$(toml_value host "$CONFIG")
  case $h in
    '' | 0.0.0.0 | '::' | '[::]' | localhost) printf '127.0.0.1' ;;
    *:*)
      h=${h#[}
      printf '[%s]' "${h%]}"
      ;;
    *) printf '%s' "$h" ;;
  esac
}

wait_healthy() {
  local url=$1 i=0 tries=$((HEALTH_TIMEOUT_S * 2))
  while [ "$i" -lt "$tries" ]; do
    if [ "$(http_status "$url")" = 200 ]; then
      return 0
    fi
    if systemctl is-failed --quiet "$SERVICE" 2>/dev/null; then
      return 1
    fi
    sleep 0.5
    i=$((i + 1))
  done
  return 1
}

lan_ip() {
  local ip=''
  if have hostname; then
    ip=$(hostname -I 2>/dev/null | awk '{ print $1 }' || true)
  fi
  if [ -z "$ip" ] && have ip; then
    ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1 || true)
  fi
  printf '%s' "$ip"
}

# The first-run setup token: `pmb serve` writes it to <data dir>/setup-token at its first start and
# deletes it once setup is done. WAIT_S: how long to give a server that just started to write it.
setup_token() {
  local f=$DATA_DIR/setup-token i=0 t=''
  while :; do
    if [ -r "$f" ]; then
      t=$(head -n 1 -- "$f" | tr -d '[:space:]')
      [ -z "$t" ] || break
    fi
    [ "$i" -lt "$(($1 * 2))" ] || break
    sleep 0.5
    i=$((i + 1))
  done
  printf '%s' "$t"
}

print_next_steps() {
  local port=$1 has_setup_page=$2 wait_s=$3 name ip token domain
  name=$(hostname 2>/dev/null || uname -n)
  name=$(printf '%s' "${name%%.*}" | tr '[:upper:]' '[:lower:]')
  ip=$(lan_ip)
  token=''
  [ "$has_setup_page" -eq 0 ] || token=$(setup_token "$wait_s")
  say ''
  if [ -n "$token" ]; then
    say "First-run setup: open this in a browser on your home network"
    say "  http://$name.local:$port/setup"
    [ -z "$ip" ] || say "  http://$ip:$port/setup   (if the .local name does not work)"
    say "and enter the setup token: $token"
    if grep -q '^ *init\b' <<<"$("$BIN" --help 2>/dev/null </dev/null || true)"; then
      say "(Or set up from this shell: sudo -u $SERVICE_USER $BIN init)"
    fi
  else
    domain=$(toml_value domain "$DATA_DIR/pmb.toml")
    [ -n "$domain" ] || domain=$(toml_value domain "$CONFIG")
    [ -n "$domain" ] || domain=$name.local
    say "PMB is running. Clients connect to:"
    say "  ws://$name.local:$port"
    [ -z "$ip" ] || say "  ws://$ip:$port"
    say "To give someone an account here, make an invite code:"
    say "  sudo -u $SERVICE_USER $BIN invite --data-dir $DATA_DIR"
    say "and on their device: pmb register NICK@$domain --server ws://${ip:-$name.local}:$port --invite CODE"
  fi
  if [ ! -x /usr/sbin/avahi-daemon ]; then
    say "(The name $name.local needs mDNS: sudo apt-get install avahi-daemon. The IP address works without it.)"
  fi
  say "Logs: sudo journalctl -u pmb -f    Config: $CONFIG    Data: $DATA_DIR"
}

do_install() {
  local previous='' version port url has_setup_page
  require_root_unless_prefix
  detect_arch
  if [ -x "$BIN" ]; then
    previous=$("$BIN" --version 2>/dev/null </dev/null | head -n 1 || true)
  fi
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  stage_binary
  if [ "$PREFIX_SET" -eq 0 ]; then
    ensure_user
  fi
  ensure_dirs
  ensure_config
  # Atomic: the new binary appears under its name in one rename (a running server keeps the old inode).
  mv -f -- "$TMP_BIN" "$BIN"
  version=$("$BIN" --version 2>/dev/null </dev/null | head -n 1 || true)
  if [ -n "$previous" ]; then
    step "Upgraded $BIN: ${previous:-?} -> ${version:-?}"
  else
    step "Installed $BIN ${version:-}"
  fi

  if [ "$NO_SYSTEMD" -eq 1 ]; then
    say ''
    say "Done (no systemd service). Start the server by hand:"
    if [ "$PREFIX_SET" -eq 1 ]; then
      say "  $(shq "$BIN") serve --config $(shq "$CONFIG")"
    else
      say "  sudo -u $SERVICE_USER $BIN serve --config $CONFIG"
    fi
    say "Config: $CONFIG    Data: $DATA_DIR"
    return 0
  fi

  install_unit
  if ! systemd_running; then
    warn "systemd is not running here (a container?): the service is installed but not started."
    say "Start the server by hand: sudo -u $SERVICE_USER $BIN serve --config $CONFIG"
    return 0
  fi
  systemctl daemon-reload
  systemctl enable --quiet "$SERVICE"
  if [ -n "$previous" ]; then
    step "Restarting the pmb service"
  else
    step "Starting the pmb service"
  fi
  systemctl restart "$SERVICE"

  port=$(service_port)
  url="http://$(local_host):$port"
  step "Waiting for $url/health (up to ${HEALTH_TIMEOUT_S}s)"
  if ! wait_healthy "$url/health"; then
    journalctl -u "$SERVICE" -n 30 --no-pager >&2 || true
    die "the pmb service did not become healthy within ${HEALTH_TIMEOUT_S}s (above: its last log lines; more with: sudo journalctl -u pmb). Check $CONFIG, then: sudo systemctl restart pmb"
  fi
  say "Healthy."
  case $(http_status "$url/setup") in
    404 | 000) has_setup_page=0 ;;
    *) has_setup_page=1 ;;
  esac
  # A server started for the first time writes its setup token just after it starts answering.
  print_next_steps "$port" "$has_setup_page" "$([ -n "$previous" ] && echo 0 || echo 5)"
}

# ---------------------------------------------------------------------------------------------------------
# Uninstall

confirm_purge() {
  local what="the data in $DATA_DIR (every account, message and the server's key) and the config in $ETC_DIR"
  [ "$PREFIX_SET" -eq 1 ] || what="$what, and the system user $SERVICE_USER"
  warn "--purge permanently deletes $what. This cannot be undone."
  [ "$YES" -eq 0 ] || return 0
  if ! (: </dev/tty) 2>/dev/null; then
    die "--purge asks for confirmation, and there is no terminal to ask on: add --yes to purge anyway"
  fi
  local answer=''
  printf 'Type "purge" to delete them: ' >/dev/tty
  read -r answer </dev/tty || true
  [ "$answer" = purge ] || die "nothing removed"
}

# Removes DIR and then its parents while they are empty, up to (not including) the prefix.
rmdir_up() {
  local d=$1
  while [ -n "$d" ] && [ "$d" != "$PREFIX" ] && [ "${d#"$PREFIX"/}" != "$d" ]; do
    rmdir -- "$d" 2>/dev/null || return 0
    d=${d%/*}
  done
}

do_uninstall() {
  require_root_unless_prefix
  [ "$PURGE" -eq 0 ] || confirm_purge

  if [ "$NO_SYSTEMD" -eq 0 ]; then
    if systemd_running; then
      if systemctl cat "$SERVICE" >/dev/null 2>&1; then
        step "Stopping and disabling the pmb service"
        systemctl disable --now --quiet "$SERVICE" || warn "could not stop the pmb service"
      fi
    fi
    if [ -e "$UNIT" ]; then
      step "Removing $UNIT"
      rm -f -- "$UNIT"
    fi
    if [ "$PURGE" -eq 1 ] && [ -d "$UNIT.d" ]; then
      rm -rf -- "$UNIT.d"
    fi
    if systemd_running; then
      systemctl daemon-reload
      systemctl reset-failed "$SERVICE" >/dev/null 2>&1 || true
    fi
  fi
  if [ -e "$BIN" ]; then
    step "Removing $BIN"
    rm -f -- "$BIN"
  fi

  if [ "$PURGE" -eq 0 ]; then
    say "Removed pmb. Kept the data in $DATA_DIR and the config in $ETC_DIR (delete them with --uninstall --purge)."
    return 0
  fi
  step "Deleting $DATA_DIR and $ETC_DIR"
  rm -rf -- "$DATA_DIR" "$ETC_DIR"
  if [ "$PREFIX_SET" -eq 1 ]; then
    rmdir_up "$BIN_DIR"
    rmdir_up "${DATA_DIR%/*}"
    rmdir_up "${ETC_DIR%/*}"
  elif id -u "$SERVICE_USER" >/dev/null 2>&1; then
    step "Removing the system user $SERVICE_USER"
    userdel "$SERVICE_USER" || warn "could not remove the user $SERVICE_USER"
    if getent group "$SERVICE_USER" >/dev/null 2>&1; then
      groupdel "$SERVICE_USER" 2>/dev/null || true
    fi
  fi
  say "Purged pmb."
}

# ---------------------------------------------------------------------------------------------------------

main() {
  parse_args "$@"
  set_layout
  if [ "$PRINT_UNIT" -eq 1 ]; then
    unit_text
    return 0
  fi
  if [ "$UNINSTALL" -eq 1 ]; then
    do_uninstall
  else
    do_install
  fi
}

main "$@"; exit $?
