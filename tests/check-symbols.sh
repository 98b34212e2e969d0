#!/bin/sh
# check-symbols.sh BIN...: fails if a binary exports a BoringSSL symbol (they must stay hidden,
# so OpenSSL-linked libraries loaded beside us cannot bind to them) or links a shared
# libcrypto/libssl (OpenSSL's or Debian's android-libboringssl) directly.
set -eu
fail=0
n=0
for b in "$@"; do
    [ -f "$b" ] && [ -x "$b" ] || continue
    n=$((n + 1))
    exported=$(nm -D --defined-only "$b" 2>/dev/null |
        grep -E ' (SSL|EVP|X509|BN|EC|ECDSA|RSA|CRYPTO|OPENSSL|ERR|BIO|CBS|CBB|ED25519|SHA[0-9]*|HMAC|RAND|PEM|ASN1|d2i|i2d|PKCS[0-9]*|bssl)_' || true)
    if [ -n "$exported" ]; then
        echo "check-symbols: $b exports BoringSSL symbols:" >&2
        echo "$exported" | head -5 >&2
        fail=1
    fi
    needed=$(readelf -d "$b" | grep NEEDED | grep -E 'lib(crypto|ssl)[.-]' || true)
    if [ -n "$needed" ]; then
        echo "check-symbols: $b links a shared libcrypto/libssl directly: $needed" >&2
        fail=1
    fi
done
if [ "$n" = 0 ]; then
    echo "check-symbols: no binaries given" >&2
    exit 1
fi
[ "$fail" = 0 ] && echo "check-symbols: $n binaries export no BoringSSL symbol and link no shared libcrypto/libssl"
exit $fail
