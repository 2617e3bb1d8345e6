#!/bin/sh
# Makes Tests/IKEv2Tests/Fixtures/ocsp: a CA, two certificates naming an OCSP responder (one to be answered
# good, one revoked), and DER OCSP responses from `openssl ocsp` acting as that responder (no nonce;
# nextUpdate a hundred years on); plus a response signed by another key under the same CA name.
set -eu
out="${1:-Tests/IKEv2Tests/Fixtures/ocsp}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for ca in ca forger; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key -out $ca.pem -days 36500 \
        -subj "/O=IKEProxy fixtures/CN=OCSP test CA" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
done
printf 'subjectAltName=IP:192.0.2.1\nkeyUsage=critical,digitalSignature\nauthorityInfoAccess=OCSP;URI:http://ocsp.test/\n' > leaf.ext
for leaf in good revoked; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $leaf.key -out $leaf.csr \
        -subj "/O=IKEProxy fixtures/CN=$leaf" 2>/dev/null
    openssl x509 -req -in $leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $leaf.pem -days 36500 -extfile leaf.ext 2>/dev/null
done
expiry=$(date -u -d '+36000 days' +%y%m%d%H%M%SZ)
revoked_at=$(date -u +%y%m%d%H%M%SZ)
for leaf in good revoked; do
    serial=$(openssl x509 -in $leaf.pem -noout -serial | cut -d= -f2)
    subject=$(openssl x509 -in $leaf.pem -noout -subject -nameopt compat | sed 's/^subject=//')
    if [ $leaf = revoked ]; then
        printf 'R\t%s\t%s,keyCompromise\t%s\tunknown\t%s\n' "$expiry" "$revoked_at" "$serial" "$subject" >> index.txt
    else
        printf 'V\t%s\t\t%s\tunknown\t%s\n' "$expiry" "$serial" "$subject" >> index.txt
    fi
done
for leaf in good revoked; do
    openssl ocsp -issuer ca.pem -cert $leaf.pem -no_nonce -reqout $leaf.req
    openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin $leaf.req -respout $leaf-response.der -ndays 36500
done
openssl ocsp -index index.txt -rsigner forger.pem -rkey forger.key -CA ca.pem -reqin good.req -respout forged-response.der -ndays 36500
mkdir -p "$OLDPWD/$out"
cp ca.pem good.pem revoked.pem good-response.der revoked-response.der forged-response.der "$OLDPWD/$out/"
