#!/usr/bin/env bash
# The appliance as packaged (issue 16): `make deb` builds the Debian package (the BoringSSL
# already built is reused), lintian finds no error, the package holds the expected files and
# scripts that start nothing, its contents unpacked into a scratch root run (`certprovctl ca
# init`, `certprovd --check` with the installed files, the installed ini changed only in its
# store path); dpkg installs it into a scratch root (`dpkg --root`, maintainer scripts run
# chrootless with $DPKG_ROOT: the user, the state directory, the permissions, nothing enabled),
# upgrades it over a changed conffile, removes and purges it (the store stays); `make install
# DESTDIR=... PREFIX=/usr` and PREFIX=/usr/local lay out the same files; `systemd-analyze
# verify` accepts the installed unit and `systemd-analyze security` rates it 2.5 or lower;
# certprovd speaks the sd_notify protocol (READY=1 once its port answers, RELOADING=1/READY=1 on
# SIGHUP, STOPPING=1 on SIGTERM) and runs, with the soft key and with a SoftHSM2 key, under the
# unit's system-call filter (tests/integration/seccomp_run.py installs it with seccomp: systemd
# is not PID 1 here, so systemd-run cannot), enrolling once. A part whose tool is absent is
# skipped and says so.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
CTL="$BIN/certprovctl"
D="$BIN/certprovd"
# The test may run under `make integration`: its make's variables (MODE=asan, the jobserver)
# must not reach the package build.
topmake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES make -C "$TOP" --no-print-directory "$@"; }
skip() { echo "SKIP: $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
DEB=""

# --- make deb ---
if have dh && have dpkg-deb && have dpkg-checkbuilddeps; then
    # noddebs: no certprov-dbgsym (half the build's time, and nothing this test looks at)
    if DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} noddebs" topmake deb >"$T/deb.log" 2>&1; then
        ok
        DEB=$(ls "$TOP"/build/deb/certprov_*_amd64.deb 2>/dev/null)
        [ -n "$DEB" ] && [ "$(echo "$DEB" | wc -l)" = 1 ] && ok ||
            bad "make deb left not one build/deb/certprov_*_amd64.deb: $DEB"
        same "nothing written beside the repository" \
            "$(ls "$TOP"/.. | grep -c '^certprov.*\.\(deb\|changes\|buildinfo\)$')" 0
    else
        bad "make deb: $(tail -20 "$T/deb.log")"
    fi
else
    skip "debhelper (dh) or dpkg-dev is not installed: no make deb"
fi

# --- lintian: no errors (warnings are listed) ---
if [ -n "$DEB" ] && have lintian; then
    lintian --tag-display-limit 0 "$DEB" >"$T/lintian" 2>&1
    grep -E '^W: ' "$T/lintian" | sed 's/^/lintian warning: /'
    if grep -Eq '^E: ' "$T/lintian"; then bad "lintian errors: $(grep -E '^E: ' "$T/lintian")"; else ok; fi
    if grep -Eq 'no-manual-page|manpage-has-errors' "$T/lintian"; then
        bad "lintian: manual pages: $(grep -E 'manual-page|manpage' "$T/lintian")"; else ok; fi
elif [ -n "$DEB" ]; then
    skip "lintian is not installed"
fi

# --- the package's contents and control files ---
if [ -n "$DEB" ]; then
    dpkg-deb -c "$DEB" | awk '{print $1, $6}' >"$T/contents"
    for f in -rwxr-xr-x:./usr/sbin/certprovd -rwxr-xr-x:./usr/bin/certprovctl \
        -rwxr-xr-x:./usr/bin/certprov-probe -rwxr-xr-x:./usr/bin/certprov-bench \
        -rw-r--r--:./lib/systemd/system/certprovd.service -rw-r--r--:./etc/certprov/certprov.ini \
        -rw-r--r--:./usr/lib/sysusers.d/certprov.conf -rw-r--r--:./usr/share/doc/certprov/copyright \
        -rw-r--r--:./usr/share/doc/certprov/README.md -rw-r--r--:./usr/share/man/man8/certprovd.8.gz \
        -rw-r--r--:./usr/share/man/man1/certprovctl.1.gz; do
        has "package holds ${f#*:} (${f%%:*})" "$T/contents" "^${f%%:*} ${f#*:}\$"
    done
    same "certprovd is only in sbin" "$(grep -c '/certprovd$' "$T/contents")" 1
    dpkg-deb -e "$DEB" "$T/control"
    has "the ini is a conffile" "$T/control/conffiles" '^/etc/certprov/certprov.ini$'
    # ${shlibs:Depends}: the shared libraries the programs link, BoringSSL not among them.
    for l in libc6 liburing2 liblmdb0 libinih1 libexpat1 libpq5 libsystemd0; do
        has "Depends names $l" "$T/control/control" "^Depends:.* $l[ ,(]|^Depends:.* $l\$"
    done
    if grep -Eq '^Depends:.*(libssl|libcrypto|boringssl)' "$T/control/control"; then
        bad "Depends names a shared libssl/libcrypto"; else ok; fi
    # Nothing is enabled or started at install: enabling only restores an earlier choice.
    # (try-restart on upgrade restarts only a service that runs; the echo is advice)
    if grep -v '^ *echo ' "$T/control/postinst" |
        grep -Eq 'deb-systemd-invoke (start|restart)|systemctl (start|enable|restart)'; then
        bad "postinst starts or enables the service: $(grep -E 'deb-systemd-invoke|systemctl' "$T/control/postinst")"
    else ok; fi
    has "postinst enables only what was enabled" "$T/control/postinst" "was-enabled 'certprovd.service'"
    has "prerm stops the service on remove" "$T/control/prerm" 'deb-systemd-invoke stop certprovd.service'
    has "postinst creates the user (sysusers)" "$T/control/postinst" 'systemd-sysusers .*certprov.conf'
    has "sysusers creates certprov" <(dpkg-deb --fsys-tarfile "$DEB" |
        tar -xO ./usr/lib/sysusers.d/certprov.conf) '^u certprov - .* /var/lib/certprov$'
fi

# --- the unpacked package runs: ca init, certprovd --check with the installed files ---
R="$T/root"
if [ -n "$DEB" ]; then
    dpkg -x "$DEB" "$R"
    INI="$R/etc/certprov/certprov.ini"
    has "installed ini: store in /var/lib/certprov" "$INI" '^path = /var/lib/certprov +;'
    # Only the state path changes: the scratch root's /var/lib/certprov.
    sed "s|^path = /var/lib/certprov |path = $R/var/lib/certprov |" "$INI" >"$T/installed.ini"
    same "the ini differs only in [store] path" \
        "$(diff "$INI" "$T/installed.ini" | grep -c '^[<>]')" 2
    mkdir -m 0700 -p "$R/var/lib/certprov" # what postinst makes
    RD="$R/usr/sbin/certprovd"
    RC="$R/usr/bin/certprovctl"
    expect_exit 1 "no CA in $R/var/lib/certprov.*ca init" "--check before ca init" \
        "$RD" -c "$T/installed.ini" --check
    check "installed certprovctl ca init" "$RC" -c "$T/installed.ini" ca init --fqdn certprov1.example.com
    check "installed certprovd --check with the installed ini" "$RD" -c "$T/installed.ini" --check
    has "--check: no daemon holds the store" "$T/out" 'daemon: none holds the store'
    check "installed certprovctl ca show" "$RC" -c "$T/installed.ini" ca show
    check "installed certprov-probe --help" "$R/usr/bin/certprov-probe" --help
fi

# --- the maintainer scripts: dpkg installs into a scratch root (chrootless, $DPKG_ROOT), ---
# --- upgrades over a changed conffile, removes and purges ---
P="$T/dpkgroot"
if [ -n "$DEB" ] && [ "$(id -u)" = 0 ] && have systemd-sysusers; then
    mkdir -p "$P/var/lib/dpkg/info" "$P/var/lib/dpkg/updates" "$P/var/lib/dpkg/triggers"
    touch "$P/var/lib/dpkg/status"
    # --force-depends: the scratch root has no libc6 &c. in its own dpkg database.
    dpk() { dpkg --root="$P" --force-script-chrootless --force-depends --force-confold "$@"; }
    check "dpkg -i into a scratch root" dpk -i "$DEB"
    has "postinst says what to do first" "$T/out" 'ca init --fqdn'
    same "dpkg: installed" "$(dpkg-query --root="$P" -W -f='${db:Status-Status}' certprov)" installed
    uid=$(awk -F: '$1 == "certprov" { print $3 }' "$P/etc/passwd")
    gid=$(awk -F: '$1 == "certprov" { print $3 }' "$P/etc/group")
    [ -n "$uid" ] && [ "$uid" -lt 1000 ] && ok || bad "sysusers: no system user certprov: $(cat "$P/etc/passwd")"
    has "certprov's home is the store" "$P/etc/passwd" '^certprov:x:[0-9]+:[0-9]+:[^:]*:/var/lib/certprov:'
    same "state directory: certprov, 0700" "$(stat -c '%u:%g %a' "$P/var/lib/certprov")" "$uid:$gid 700"
    same "/etc/certprov: root:certprov 0750" "$(stat -c '%u:%g %a' "$P/etc/certprov")" "0:$gid 750"
    same "ini: root:certprov 0640" "$(stat -c '%u:%g %a' "$P/etc/certprov/certprov.ini")" "0:$gid 640"
    if find "$P/etc/systemd" -name 'certprovd.service' 2>/dev/null | grep -q .; then
        bad "the service was enabled: $(find "$P/etc/systemd" -name 'certprovd.service')"; else ok; fi
    # Upgrade (the same version again) over a changed conffile: the change stays.
    echo "; the operator's change" >>"$P/etc/certprov/certprov.ini"
    check "dpkg -i again (upgrade path)" dpk -i "$DEB"
    has "the changed ini is kept" "$P/etc/certprov/certprov.ini" "^; the operator's change\$"
    # something in the store, as ca init leaves it
    mkdir -p "$P/var/lib/certprov/ca" && echo x >"$P/var/lib/certprov/ca/issuing.crt"
    check "dpkg --remove" dpk --remove certprov
    [ ! -e "$P/usr/sbin/certprovd" ] && ok || bad "remove left /usr/sbin/certprovd"
    [ -f "$P/etc/certprov/certprov.ini" ] && ok || bad "remove took the conffile (only purge may)"
    check "dpkg --purge" dpk --purge certprov
    [ ! -e "$P/etc/certprov" ] && ok || bad "purge left /etc/certprov: $(ls -la "$P/etc/certprov")"
    [ -f "$P/var/lib/certprov/ca/issuing.crt" ] && ok || bad "purge removed the store"
    has "purge says the store was kept" "$T/out" 'was kept'
elif [ -n "$DEB" ]; then
    skip "not root or no systemd-sysusers: maintainer scripts not run"
fi

# --- make install DESTDIR PREFIX=/usr and /usr/local ---
I="$T/inst"
if topmake MODE=release install DESTDIR="$I" PREFIX=/usr >"$T/install.log" 2>&1; then
    ok
    for f in usr/sbin/certprovd usr/bin/certprovctl usr/bin/certprov-probe usr/bin/certprov-bench; do
        [ -x "$I/$f" ] && ok || bad "make install: no executable $f"
    done
    for f in lib/systemd/system/certprovd.service etc/certprov/certprov.ini \
        usr/share/doc/certprov/README.md usr/share/doc/certprov/examples/certprov.ini \
        usr/share/man/man8/certprovd.8 usr/share/man/man1/certprovctl.1 \
        usr/share/man/man1/certprov-probe.1 usr/share/man/man1/certprov-bench.1; do
        [ -f "$I/$f" ] && ok || bad "make install: no $f"
    done
    if [ -n "$DEB" ]; then
        # the package is make install's tree plus debhelper's files
        same "make install's unit is the package's" \
            "$(cmp "$I/lib/systemd/system/certprovd.service" "$R/lib/systemd/system/certprovd.service" && echo same)" same
        same "make install's ini is the package's" \
            "$(cmp "$I/etc/certprov/certprov.ini" "$R/etc/certprov/certprov.ini" && echo same)" same
    fi
    echo "; changed" >>"$I/etc/certprov/certprov.ini"
    check "make install again" topmake MODE=release install DESTDIR="$I" PREFIX=/usr
    has "an existing ini is kept" "$I/etc/certprov/certprov.ini" '^; changed$'
    [ -f "$I/etc/certprov/certprov.ini.new" ] && ok || bad "make install: no certprov.ini.new beside a kept ini"
else
    bad "make install DESTDIR PREFIX=/usr: $(tail -10 "$T/install.log")"
fi
L="$T/local"
if topmake MODE=release install DESTDIR="$L" PREFIX=/usr/local >"$T/install.log" 2>&1; then
    has "PREFIX=/usr/local: unit in PREFIX/lib/systemd/system" \
        "$L/usr/local/lib/systemd/system/certprovd.service" '^ExecStart=/usr/local/sbin/certprovd -c /etc/certprov/certprov.ini$'
    has "PREFIX=/usr/local: ExecStartPre rewritten" \
        "$L/usr/local/lib/systemd/system/certprovd.service" '^ExecStartPre=/usr/local/sbin/certprovd .* --check$'
    [ -x "$L/usr/local/sbin/certprovd" ] && ok || bad "PREFIX=/usr/local: no sbin/certprovd"
else
    bad "make install PREFIX=/usr/local: $(tail -10 "$T/install.log")"
fi

# --- the unit: what the brief asks of it, systemd-analyze verify and security ---
U="$TOP/deploy/certprovd.service"
for k in 'Type=notify' 'User=certprov' 'StateDirectory=certprov' 'ProtectSystem=strict' \
    'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' 'CapabilityBoundingSet=' \
    'MemoryDenyWriteExecute=yes' 'ExecReload=/bin/kill -HUP \$MAINPID' \
    'ExecStartPre=/usr/sbin/certprovd -c /etc/certprov/certprov.ini --check' 'LimitNOFILE=65536'; do
    has "unit: $k" "$U" "^$k\$"
done
for s in io_uring_setup io_uring_enter io_uring_register; do
    has "unit: SystemCallFilter allows $s" "$U" "^SystemCallFilter=[^~].*\\b$s\\b"
done
if [ -n "$DEB" ] && have systemd-analyze; then
    # --root: the scratch root holds the unit, its programs, /bin/kill and the targets it names.
    mkdir -p "$R/bin"
    cp /bin/kill "$R/bin/kill"
    for u in sysinit.target basic.target shutdown.target network-online.target multi-user.target; do
        [ -f "/lib/systemd/system/$u" ] && cp "/lib/systemd/system/$u" "$R/lib/systemd/system/"
    done
    if systemd-analyze verify --root="$R" certprovd.service >"$T/verify" 2>&1 && [ ! -s "$T/verify" ]; then
        ok
    else
        bad "systemd-analyze verify: $(cat "$T/verify")"
    fi
    # The check can fail: a unit whose ExecStart is missing is refused.
    sed 's|^ExecStart=/usr/sbin/certprovd|ExecStart=/usr/sbin/certprovd-missing|' \
        "$R/lib/systemd/system/certprovd.service" >"$R/etc/certprovd-bad.service"
    mkdir -p "$R/etc/systemd/system"
    mv "$R/etc/certprovd-bad.service" "$R/etc/systemd/system/certprovd-bad.service"
    expect_exit 1 "certprovd-missing is not executable" "verify refuses a missing ExecStart" \
        systemd-analyze verify --root="$R" certprovd-bad.service
    systemd-analyze security --offline=true --root="$R" certprovd.service >"$T/security" 2>&1
    level=$(sed -n 's/.*Overall exposure level for certprovd.service: \([0-9.]*\).*/\1/p' "$T/security")
    echo "systemd-analyze security: overall exposure ${level:-?}"
    if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.5) }'; then ok; else
        bad "systemd-analyze security: exposure '${level}' above 2.5: $(grep '✗' "$T/security")"; fi
elif [ -n "$DEB" ]; then
    skip "systemd-analyze is not installed: unit not verified"
fi

# --- sd_notify: READY=1 once the port answers, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 ---
PORT=$(free_port) || exit 1
mkdir -p "$T/n"
cat >"$T/n/certprov.ini" <<INI
[server]
name = certprov1.example.com
listen = 127.0.0.1:$PORT
[store]
path = store
map_size = 64MiB
[pool.pool1]
store = embedded
INI
"$CTL" -c "$T/n/certprov.ini" ca init >/dev/null 2>&1 || bad "ca init for the notify test"
printf '27182\n' | "$CTL" -c "$T/n/certprov.ini" user add --uri sip:alice@example.com --pool pool1 \
    --ext 1001 --pin-stdin >/dev/null 2>&1 || bad "user add for the notify test"
# An enrollment once READY=1 was sent: the CA key signs under the filter too.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/a.key" \
    -subj /CN=alice@example.com -outform DER 2>/dev/null | base64 >"$T/a.b64"
export ENROLL_CSR="$T/a.b64"
NINI="$T/n/certprov.ini"
NPORT=$PORT
# notify_run [WRAPPER...]: certprovd ($ND, else the one under test) with $NINI (port $NPORT)
# under WRAPPER, through its start, an enrollment of alice, SIGHUP and SIGTERM; the socket and
# the daemon's log are $T/n/notify.sock[.log].
notify_run() {
    rm -f "$T/n/notify.sock"
    python3 - "$T/n/notify.sock" "$NPORT" "$@" "${ND:-$D}" -c "$NINI" <<'PY'
import os, signal, socket, subprocess, sys, time, urllib.request
path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(path + ".log", "w"))
def healthz():
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2).status
    except Exception as e:
        return str(e)
def expect(want, timeout=15):
    s.settimeout(timeout)
    got = []
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            sys.exit("no %s within %d s (got %r; exit %r)" % (want, timeout, got, p.poll()))
        got.append(msg)
        if want in msg.split("\n"):
            return msg, got
msg, got = expect("READY=1")
h = healthz()
if h != 200:
    sys.exit("READY=1 sent while /healthz does not answer 200: %r" % h)
if len(got) != 1:
    sys.exit("messages before READY=1: %r" % got[:-1])
req = urllib.request.Request("http://127.0.0.1:%d/.well-known/est/simpleenroll" % port,
                             data=open(os.environ["ENROLL_CSR"], "rb").read(),
                             headers={"Content-Type": "application/pkcs10",
                                      "Authorization": "Basic MTAwMToyNzE4Mg=="})  # 1001:27182
try:
    st = urllib.request.urlopen(req, timeout=20).status
except Exception as e:
    st = str(e)
if st != 200:
    sys.exit("EST enrollment: %r; log: %s" % (st, open(path + ".log").read()[-600:]))
p.send_signal(signal.SIGHUP)
msg, got = expect("RELOADING=1")
if "MONOTONIC_USEC=" not in msg:
    sys.exit("RELOADING=1 without MONOTONIC_USEC: %r" % msg)
msg, got = expect("READY=1")
if healthz() != 200:
    sys.exit("no answer after the reload")
p.send_signal(signal.SIGTERM)
expect("STOPPING=1")
rc = p.wait(timeout=20)
if rc != 0:
    sys.exit("certprovd exited %d: %s" % (rc, open(path + ".log").read()[-600:]))
print("notify: READY=1 after the port answered; an enrollment; RELOADING=1, READY=1; STOPPING=1; exit 0")
PY
}
if notify_run >"$T/notify.out" 2>&1; then ok; cat "$T/notify.out"; else
    bad "sd_notify: $(tail -5 "$T/notify.out")"; fi

# --- certprovd under the unit's system-call filter (seccomp; systemd-run needs systemd as PID 1) ---
# The package's certprovd when there is one (what the unit runs); else the one under test,
# without LeakSanitizer, whose ptrace the filter refuses, as it would under systemd.
if [ -n "$DEB" ]; then ND="$R/usr/sbin/certprovd"; else ND="$D"; export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; fi
if have systemd-analyze && [ -r /usr/include/x86_64-linux-gnu/asm/unistd_64.h ]; then
    if notify_run python3 "$TOP/tests/integration/seccomp_run.py" "$U" -- >"$T/seccomp.out" 2>&1; then
        ok
        echo "seccomp: certprovd ran under the unit's SystemCallFilter"
    else
        bad "certprovd under the unit's SystemCallFilter: $(tail -5 "$T/seccomp.out"; tail -5 "$T/n/notify.sock.log")"
    fi
    # The filter bites: without io_uring_setup the engine cannot start, and says why.
    if notify_run python3 "$TOP/tests/integration/seccomp_run.py" "$U" --deny io_uring_setup -- \
        >"$T/seccomp2.out" 2>&1; then
        bad "certprovd started under a filter without io_uring_setup"
    else
        has "without io_uring_setup: the start fails on it" "$T/n/notify.sock.log" 'Operation not permitted'
    fi
    # [ca] backend = pkcs11 (SoftHSM2 in a private token directory): the module's calls (login,
    # sessions, C_Sign for --check and the enrollment) pass the filter as well.
    MODULE=/usr/lib/softhsm/libsofthsm2.so
    if [ -f "$MODULE" ] && have softhsm2-util; then
        mkdir -p "$T/tokens" "$T/p"
        printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
            "$T/tokens" >"$T/softhsm2.conf"
        export SOFTHSM2_CONF="$T/softhsm2.conf"
        # SoftHSM2's own leaks (of the system OpenSSL's; test_pkcs11.sh says more): not ours.
        printf 'leak:libcrypto.so.3\nleak:libsofthsm2.so\n' >"$T/lsan.supp"
        export LSAN_OPTIONS="suppressions=$T/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
        softhsm2-util --init-token --free --label certprov --pin 735194 --so-pin 86420975 >/dev/null ||
            bad "softhsm2-util --init-token"
        printf '735194\n' >"$T/p/pin"
        chmod 600 "$T/p/pin"
        NPORT=$(free_port) || exit 1
        NINI="$T/p/certprov.ini"
        sed -e "s|^listen = .*|listen = 127.0.0.1:$NPORT|" "$T/n/certprov.ini" >"$NINI"
        printf '[ca]\nbackend = pkcs11\nmodule = %s\nkey = pkcs11:token=certprov;object=ca?pin-source=file:%s\nsessions = 2\n' \
            "$MODULE" "$T/p/pin" >>"$NINI"
        check "pkcs11: ca init" "$CTL" -c "$NINI" ca init --pkcs11 "pkcs11:token=certprov;object=ca?pin-source=file:$T/p/pin"
        printf '27182\n' | "$CTL" -c "$NINI" user add --uri sip:alice@example.com --pool pool1 \
            --ext 1001 --pin-stdin >/dev/null 2>&1 || bad "pkcs11: user add"
        check "pkcs11: --check under the filter (signs with the token)" \
            python3 "$TOP/tests/integration/seccomp_run.py" "$U" -- "$ND" -c "$NINI" --check
        if notify_run python3 "$TOP/tests/integration/seccomp_run.py" "$U" -- >"$T/seccomp3.out" 2>&1; then
            ok
            echo "seccomp: certprovd with a SoftHSM2 key ran under the unit's SystemCallFilter"
        else
            bad "pkcs11 under the unit's SystemCallFilter: $(tail -5 "$T/seccomp3.out"; tail -5 "$T/n/notify.sock.log")"
        fi
    else
        skip "softhsm2 is not installed: the pkcs11 backend not run under the filter"
    fi
else
    skip "systemd-analyze or the kernel's syscall table header is absent: filter not run"
fi

finish
