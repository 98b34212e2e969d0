#!/usr/bin/env bash
# make-csr-vectors.sh: regenerates the PKCS#10 test vectors in tests/data/csr/ with the openssl
# CLI (OpenSSL 3). Every key is a throwaway generated here and deleted afterwards; only the CSRs
# (DER, plus one PEM copy) are kept. Run from the repository root:
#     tests/data/make-csr-vectors.sh
# See tests/data/README.md for what each vector is and what the parser must say about it.
set -euo pipefail

out=tests/data/csr
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cn=/CN=alice@example.com

# key NAME ALGORITHM [PKEYOPT...]: a fresh throwaway key in $tmp/NAME.key.
key() {
    local name=$1 alg=$2
    shift 2
    local opts=()
    for o in "$@"; do opts+=(-pkeyopt "$o"); done
    openssl genpkey -algorithm "$alg" "${opts[@]}" -out "$tmp/$name.key" 2>/dev/null
}

# csr KEY OUT SUBJECT [REQ ARGS...]: a DER CSR signed by KEY.
csr() {
    local k=$1 o=$2 subj=$3
    shift 3
    openssl req -new -key "$tmp/$k.key" -subj "$subj" "$@" -outform DER -out "$out/$o.der"
}

# Accepted keys and signatures.
key rsa2048 RSA rsa_keygen_bits:2048
key rsa3072 RSA rsa_keygen_bits:3072
key rsa4096 RSA rsa_keygen_bits:4096
key p256 EC ec_paramgen_curve:P-256 ec_param_enc:named_curve
key p384 EC ec_paramgen_curve:P-384 ec_param_enc:named_curve
key ed25519 ED25519
csr rsa2048 rsa2048-sha256 "$cn" -sha256
csr rsa3072 rsa3072-sha256 "$cn" -sha256
csr rsa4096 rsa4096-sha256 "$cn" -sha256
csr p256 p256-sha256 "$cn" -sha256
csr p384 p384-sha256 "$cn" -sha256
csr p384 p384-sha384 "$cn" -sha384
csr ed25519 ed25519 "$cn"
openssl req -inform DER -in "$out/p256-sha256.der" -outform PEM -out "$out/p256-sha256.pem"

# Refused keys.
key rsa1024 RSA rsa_keygen_bits:1024
key rsa-e3 RSA rsa_keygen_bits:2048 rsa_keygen_pubexp:3
key p192 EC ec_paramgen_curve:prime192v1 ec_param_enc:named_curve
key secp256k1 EC ec_paramgen_curve:secp256k1 ec_param_enc:named_curve
csr rsa1024 rsa1024-sha256 "$cn" -sha256
csr rsa-e3 rsa-e3-sha256 "$cn" -sha256
csr p192 p192-sha256 "$cn" -sha256
csr secp256k1 secp256k1-sha256 "$cn" -sha256

# Refused signatures.
csr rsa2048 rsa2048-sha1 "$cn" -sha1
csr rsa2048 rsa2048-md5 "$cn" -md5
csr rsa2048 rsa2048-pss "$cn" -sha256 -sigopt rsa_padding_mode:pss

# A bad signature: the last byte of an RSA signature flipped. The BIT STRING keeps its length,
# so the DER stays valid and only verification fails.
cp "$out/rsa2048-sha256.der" "$out/bad-signature.der"
size=$(stat -c %s "$out/bad-signature.der")
last=$(od -An -tu1 -j $((size - 1)) -N1 "$out/bad-signature.der" | tr -d ' ')
printf "$(printf '\\%03o' $((last ^ 0xff)))" |
    dd of="$out/bad-signature.der" bs=1 seek=$((size - 1)) conv=notrunc status=none

# Too complex: 20 extensions (private OIDs under the RFC 5612 example enterprise number),
# 9 SANs, 17 RDNs.
exts=()
for i in $(seq 1 20); do exts+=(-addext "1.3.6.1.4.1.32473.1.$i=DER:0500"); done
csr p256 many-extensions "$cn" "${exts[@]}"
sans=URI:sip:alice@example.com
for i in $(seq 1 8); do sans+=",DNS:host$i.example.com"; done
csr p256 many-sans "$cn" -addext "subjectAltName=$sans"
rdns=
for i in $(seq 1 16); do rdns+="/OU=unit$i"; done
csr p256 many-rdns "$rdns$cn"

# Identity.
csr p256 alice-san-alice "$cn" -addext "subjectAltName=URI:sip:alice@example.com"
csr p256 alice-san-bob "$cn" -addext "subjectAltName=URI:sip:bob@example.com"
csr p256 cn-bob "/CN=bob@example.com"
csr p256 cn-sip-alice "/CN=sip:alice@example.com"
csr p256 no-cn-no-san "/O=Example"
csr p256 alice-san-mixed "$cn" \
    -addext "subjectAltName=email:alice@example.com,URI:sip:alice@example.com,DNS:phone.example.com"
