#!/bin/sh
# Regenerates the example PKI used by the README demo, next to this script:
#
#   ca/example-root-x1.pem                   "Example Root X1 (not trusted)"   RSA 4096, self-signed
#   ca/example-rsa-intermediate-r1.pem       "Example RSA Intermediate R1"     RSA 2048, signed by the root
#   ca/example-ecdsa-intermediate-e1.pem     "Example ECDSA Intermediate E1"   P-384,    signed by the root
#   letsencrypt/live/mx.example.org/         ECDSA P-256 leaf, issued by E1
#   letsencrypt/live/mx.example.org-rsa/     RSA 2048 leaf,    issued by R1
#   README.md                                 description + SPKI SHA-256 ground truth
#
# Each lineage holds cert.pem, chain.pem (the intermediate only), fullchain.pem (cert + chain)
# and privkey.pem as real files (certbot uses symlinks into ../../archive/; plain files keep git simple).
# Leaves are valid for 10 years starting yesterday. The CA private keys only ever exist in a
# temporary directory and are deleted on exit. Every run makes new keys, so every hash changes.
#
# Needs: POSIX sh, openssl >= 1.1.1 (tested with 3.0), date (GNU or BSD). Runs from any cwd.
set -eu

HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/example-chain.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
cd "$WORK"
# Ignore any system/user openssl.cnf: everything is configured explicitly below.
OPENSSL_CONF=/dev/null
export OPENSSL_CONF

# --- dates -------------------------------------------------------------------------------------
# UTCTime (YYMMDDHHMMSSZ) for "yesterday, now", and the same instant N years later
# (Feb 29 becomes Feb 28). All dates stay before 2050, so UTCTime is the RFC 5280 encoding.
fmt_epoch() { date -u -d "@$1" +%y%m%d%H%M%SZ 2>/dev/null || date -u -r "$1" +%y%m%d%H%M%SZ; }
plus_years() { # $1 = YYMMDDHHMMSSZ, $2 = years
  yy=$(printf %s "$1" | cut -c1-2)
  mmdd=$(printf %s "$1" | cut -c3-6)
  rest=$(printf %s "$1" | cut -c7-)
  [ "$mmdd" = 0229 ] && mmdd=0228
  printf '%02d%s%s\n' "$(expr "$yy" + "$2")" "$mmdd" "$rest"
}
START=$(fmt_epoch $(($(date -u +%s) - 86400)))
ROOT_END=$(plus_years "$START" 20)
INT_END=$(plus_years "$START" 12)
LEAF_END=$(plus_years "$START" 10)

# --- openssl config ----------------------------------------------------------------------------
mkdir db
: > db/index.txt
# OpenSSL 3.0's ca wants a serial file even with -rand_serial (which never reads or updates it).
openssl rand -hex 16 > db/serial
cat > ca.cnf <<'EOF'
[ req ]
distinguished_name = req_dn
[ req_dn ]

[ ca ]
default_ca = example_ca
[ example_ca ]
database        = db/index.txt
new_certs_dir   = db
serial          = db/serial
default_md      = sha256
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none

[ policy_any ]
organizationName = optional
commonName       = supplied

[ root_ext ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ intermediate_ext ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ leaf_ecdsa_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = DNS:mx.example.org

[ leaf_rsa_ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = DNS:mx.example.org
EOF

# sign CSR CERT_OUT ISSUER_CERT ISSUER_KEY NOT_AFTER EXT_SECTION DIGEST   (ISSUER_CERT "-": self-signed)
sign() {
  if [ "$3" = - ]; then issuer=-selfsign; else issuer="-cert=$3"; fi
  openssl ca -batch -notext -preserveDN -rand_serial -config ca.cnf "$issuer" -keyfile "$4" \
    -in "$1" -out "$2" -startdate "$START" -enddate "$5" -extensions "$6" -md "$7" 2>ca.log ||
    { cat ca.log >&2; exit 1; }
}
# genkey OUT GENPKEY-ARGS...   (stderr, i.e. RSA progress dots, only shown on failure)
genkey() {
  out=$1
  shift
  openssl genpkey "$@" -out "$out" 2>genkey.log || { cat genkey.log >&2; exit 1; }
}
csr() { # KEY SUBJECT OUT
  openssl req -new -config ca.cnf -key "$1" -subj "$2" -out "$3"
}

# --- keys --------------------------------------------------------------------------------------
genkey root.key -algorithm RSA -pkeyopt rsa_keygen_bits:4096
genkey r1.key -algorithm RSA -pkeyopt rsa_keygen_bits:2048
genkey e1.key -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve
genkey leaf-ecdsa.key -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve
genkey leaf-rsa.key -algorithm RSA -pkeyopt rsa_keygen_bits:2048

# --- certificates ------------------------------------------------------------------------------
csr root.key '/O=Example PKI (not trusted)/CN=Example Root X1 (not trusted)' root.csr
sign root.csr root.pem - root.key "$ROOT_END" root_ext sha256

csr r1.key '/O=Example PKI (not trusted)/CN=Example RSA Intermediate R1' r1.csr
sign r1.csr r1.pem root.pem root.key "$INT_END" intermediate_ext sha256

csr e1.key '/O=Example PKI (not trusted)/CN=Example ECDSA Intermediate E1' e1.csr
sign e1.csr e1.pem root.pem root.key "$INT_END" intermediate_ext sha256

csr leaf-ecdsa.key '/CN=mx.example.org' leaf-ecdsa.csr
sign leaf-ecdsa.csr leaf-ecdsa.pem e1.pem e1.key "$LEAF_END" leaf_ecdsa_ext sha384

csr leaf-rsa.key '/CN=mx.example.org' leaf-rsa.csr
sign leaf-rsa.csr leaf-rsa.pem r1.pem r1.key "$LEAF_END" leaf_rsa_ext sha256

# The CA keys are not needed any more: delete them now (the trap would, too).
rm -f root.key r1.key e1.key

openssl verify -CAfile root.pem -untrusted e1.pem leaf-ecdsa.pem >/dev/null
openssl verify -CAfile root.pem -untrusted r1.pem leaf-rsa.pem >/dev/null

# --- assemble the output in a staging dir, then swap it in ---------------------------------------
OUT=$WORK/out
mkdir -p "$OUT/ca"
cp root.pem "$OUT/ca/example-root-x1.pem"
cp r1.pem "$OUT/ca/example-rsa-intermediate-r1.pem"
cp e1.pem "$OUT/ca/example-ecdsa-intermediate-e1.pem"

lineage() { # NAME LEAF_CERT LEAF_KEY INTERMEDIATE
  d=$OUT/letsencrypt/live/$1
  mkdir -p "$d"
  cp "$2" "$d/cert.pem"
  cp "$4" "$d/chain.pem"
  cat "$2" "$4" > "$d/fullchain.pem"
  cp "$3" "$d/privkey.pem"
  chmod 644 "$d/cert.pem" "$d/chain.pem" "$d/fullchain.pem"
  chmod 600 "$d/privkey.pem"
}
lineage mx.example.org leaf-ecdsa.pem leaf-ecdsa.key e1.pem
lineage mx.example.org-rsa leaf-rsa.pem leaf-rsa.key r1.pem

# --- ground truth: SPKI SHA-256, with the openssl CLI only --------------------------------------
spki_sha256() {
  h=$(openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  # sh has no pipefail: reject an empty result or the digest of empty input.
  case $h in
    '' | e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855) echo "no SPKI in $1" >&2; exit 1 ;;
  esac
  printf '%s\n' "$h"
}
subject() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'; }
not_before() { openssl x509 -in "$1" -noout -startdate | sed 's/^notBefore=//'; }
not_after() { openssl x509 -in "$1" -noout -enddate | sed 's/^notAfter=//'; }

LE=$OUT/letsencrypt/live
ECDSA_LEAF=$(spki_sha256 "$LE/mx.example.org/cert.pem")
RSA_LEAF=$(spki_sha256 "$LE/mx.example.org-rsa/cert.pem")
E1=$(spki_sha256 "$OUT/ca/example-ecdsa-intermediate-e1.pem")
R1=$(spki_sha256 "$OUT/ca/example-rsa-intermediate-r1.pem")
ROOT=$(spki_sha256 "$OUT/ca/example-root-x1.pem")

cat > "$OUT/README.md" <<EOF
# Example certificates for the demo (NOT TRUSTED, PUBLIC KEYS)

> **Everything here is a public example. The private keys in this directory are published in
> the repository: never use them, or anything signed by these CAs, for real traffic.**

This directory holds a fake CA hierarchy and two certbot-style lineages for the example mail
host \`mx.example.org\`. The README demo publishes TLSA records from these lineages without
any credentials. It is generated by [\`make-example-chain.sh\`](make-example-chain.sh) (run it
from any directory; it rewrites \`ca/\`, \`letsencrypt/\` and this README with new keys, so all
hashes below change on every run).

\`\`\`
Example Root X1 (not trusted)            RSA 4096, self-signed      ca/example-root-x1.pem
├── Example RSA Intermediate R1          RSA 2048                   ca/example-rsa-intermediate-r1.pem
│   └── mx.example.org                   RSA 2048 leaf              letsencrypt/live/mx.example.org-rsa/
└── Example ECDSA Intermediate E1        ECDSA P-384                ca/example-ecdsa-intermediate-e1.pem
    └── mx.example.org                   ECDSA P-256 leaf           letsencrypt/live/mx.example.org/
\`\`\`

Each lineage directory \`letsencrypt/live/<name>/\` has the four files certbot writes:
\`cert.pem\` (the leaf), \`chain.pem\` (the issuing intermediate only, no root),
\`fullchain.pem\` (\`cert.pem\` followed by \`chain.pem\`) and \`privkey.pem\` (the leaf key).
Unlike certbot, which makes them symlinks into \`../../archive/<name>/certN.pem\` etc., they are
plain files here so git stores them simply.

The CA private keys are **not** in the repository: the script deletes them after signing.

## Validity

The leaves are valid for 10 years starting the day before they were generated, so the demo
does not expire any time soon (the intermediates are valid for 12 years, the root for 20):

| certificate | notBefore | notAfter |
|---|---|---|
| \`live/mx.example.org/cert.pem\` | $(not_before "$LE/mx.example.org/cert.pem") | $(not_after "$LE/mx.example.org/cert.pem") |
| \`live/mx.example.org-rsa/cert.pem\` | $(not_before "$LE/mx.example.org-rsa/cert.pem") | $(not_after "$LE/mx.example.org-rsa/cert.pem") |
| \`ca/example-ecdsa-intermediate-e1.pem\` | $(not_before "$OUT/ca/example-ecdsa-intermediate-e1.pem") | $(not_after "$OUT/ca/example-ecdsa-intermediate-e1.pem") |
| \`ca/example-rsa-intermediate-r1.pem\` | $(not_before "$OUT/ca/example-rsa-intermediate-r1.pem") | $(not_after "$OUT/ca/example-rsa-intermediate-r1.pem") |
| \`ca/example-root-x1.pem\` | $(not_before "$OUT/ca/example-root-x1.pem") | $(not_after "$OUT/ca/example-root-x1.pem") |

## SPKI SHA-256 (ground truth for the demo)

SHA-256 of the DER SubjectPublicKeyInfo, i.e. the data of a TLSA record with selector 1 and
matching type 1, computed with

\`\`\`sh
openssl x509 -in FILE -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256
\`\`\`

| certificate | subject | SPKI SHA-256 |
|---|---|---|
| \`live/mx.example.org/cert.pem\` (ECDSA P-256 leaf) | \`$(subject "$LE/mx.example.org/cert.pem")\` | \`$ECDSA_LEAF\` |
| \`live/mx.example.org-rsa/cert.pem\` (RSA 2048 leaf) | \`$(subject "$LE/mx.example.org-rsa/cert.pem")\` | \`$RSA_LEAF\` |
| \`ca/example-ecdsa-intermediate-e1.pem\` (= \`live/mx.example.org/chain.pem\`) | \`$(subject "$OUT/ca/example-ecdsa-intermediate-e1.pem")\` | \`$E1\` |
| \`ca/example-rsa-intermediate-r1.pem\` (= \`live/mx.example.org-rsa/chain.pem\`) | \`$(subject "$OUT/ca/example-rsa-intermediate-r1.pem")\` | \`$R1\` |
| \`ca/example-root-x1.pem\` | \`$(subject "$OUT/ca/example-root-x1.pem")\` | \`$ROOT\` |

So the expected records for SMTP on \`mx.example.org\` are:

\`\`\`
_25._tcp.mx.example.org. IN TLSA 3 1 1 $ECDSA_LEAF
_25._tcp.mx.example.org. IN TLSA 3 1 1 $RSA_LEAF
_25._tcp.mx.example.org. IN TLSA 2 1 1 $E1
_25._tcp.mx.example.org. IN TLSA 2 1 1 $R1
\`\`\`

(3 1 1 = DANE-EE, the leaf's key; 2 1 1 = DANE-TA, the issuing intermediate's key.)

To check by hand:

\`\`\`sh
openssl verify -CAfile ca/example-root-x1.pem -untrusted letsencrypt/live/mx.example.org/chain.pem \\
  letsencrypt/live/mx.example.org/cert.pem
\`\`\`
EOF

# --- swap in ---------------------------------------------------------------------------------------
rm -rf "$HERE/ca" "$HERE/letsencrypt"
cp -R "$OUT/ca" "$OUT/letsencrypt" "$HERE/"
cp "$OUT/README.md" "$HERE/README.md"
chmod 600 "$HERE/letsencrypt/live/mx.example.org/privkey.pem" "$HERE/letsencrypt/live/mx.example.org-rsa/privkey.pem"

echo "wrote $HERE/ca, $HERE/letsencrypt and $HERE/README.md"
echo "SPKI SHA-256:"
echo "  mx.example.org (ECDSA P-256)      $ECDSA_LEAF"
echo "  mx.example.org-rsa (RSA 2048)     $RSA_LEAF"
echo "  Example ECDSA Intermediate E1     $E1"
echo "  Example RSA Intermediate R1       $R1"
echo "  Example Root X1 (not trusted)     $ROOT"
