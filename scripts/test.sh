#!/usr/bin/env bash
# The project's whole test suite: installs what it needs on a fresh Debian machine (when root), builds,
# runs the unit tests and a fixed fuzzing run, then the strongSwan interop tests in network namespaces.
# Any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: the suite includes network-namespace interop tests and must run as root" >&2
    exit 1
fi

need_apt=0
for tool in /usr/lib/ipsec/charon swanctl ip ping ethtool linux.uml modprobe iperf3 tshark tcpdump nft conntrack setpriv curl openssl softhsm2-util /usr/include/p11-kit-1/p11-kit/pkcs11.h /usr/include/sqlite3.h /usr/bin/chromium /usr/bin/chromedriver; do
    command -v "$tool" >/dev/null 2>&1 || [ -e "$tool" ] || need_apt=1
done
if [ "$need_apt" -eq 1 ]; then
    echo "== installing strongSwan, iproute2, tshark, SoftHSM2, the PKCS#11 and SQLite headers, and chromium with its driver (the console's browser test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strongswan-charon strongswan-swanctl \
        libcharon-extra-plugins libstrongswan-extra-plugins iproute2 iputils-ping ethtool tshark tcpdump nftables conntrack util-linux curl openssl \
        softhsm2 libp11-kit-dev libsqlite3-dev user-mode-linux kmod iperf3 chromium chromium-driver >/dev/null
fi
if [ ! -x /var/cache/ikeproxy-libreswan/tree/usr/libexec/ipsec/pluto ]; then
    # libreswan runs only inside UML guests: its package conflicts with strongSwan's, so it is unpacked, not installed
    # (tests/interop/lib/guest_libreswan.py); the host gets the libraries pluto links against.
    echo "== unpacking libreswan for the guests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnss3-tools libevent-pthreads-2.1-7 libevent-core-2.1-7 libldns3 \
        dns-root-data libunbound8 libcurl3-nss libcap-ng0 libaudit1 bind9-host iptables >/dev/null
    mkdir -p /var/cache/ikeproxy-libreswan
    (cd /var/cache/ikeproxy-libreswan && rm -rf tree ./*.deb && apt-get download -qq libreswan && dpkg-deb -x libreswan_*.deb tree)
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    # The PostgreSQL store's tests start servers of their own (initdb and pg_ctl as the postgres user, loopback only).
    echo "== installing PostgreSQL"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
python3 -c "import vici" 2>/dev/null || python3 -m pip install -q vici
python3 -c "import yaml, openapi_spec_validator, schemathesis" 2>/dev/null || python3 -m pip install -q pyyaml openapi-spec-validator schemathesis
# The web console's test drives Debian's chromium through its chromedriver with Selenium (tests/interop/lib/console_browser.py).
python3 -c "import selenium" 2>/dev/null || python3 -m pip install -q selenium
# flood.py's fragment flood derives real IKE SA keys (X25519, HMAC, AES-GCM) in its attacker; the unit tests check
# swift-crypto's ML-KEM against it (KeyExchangeMethodTests), which needs a cryptography with ML-KEM.
python3 -c "from cryptography.hazmat.primitives.asymmetric import mlkem" 2>/dev/null || python3 -m pip install -q --upgrade cryptography

echo "== formatting (swift format lint against .swift-format; fix with: swift format format --in-place --recursive --parallel Sources Tests benchmarks fuzz/Sources fuzz/Package.swift Package.swift)"
swift format lint --strict --recursive --parallel Sources Tests benchmarks fuzz/Sources fuzz/Package.swift Package.swift

echo "== unit tests"
swift build --build-tests
swift test

echo "== fuzzing (libFuzzer, a fixed 50,000 inputs per target from the committed corpus; docs/fuzzing.md)"
FUZZ_RUNS=50000 scripts/fuzz.sh

echo "== strongSwan interop tests"
swift build --product ikeproxy
python3 tests/interop/strongswan_interop.py

echo "== certificate matrix (chains made with openssl judged by ikeproxy and by strongSwan in IKE_AUTH: both as RFC 5280 says)"
python3 tests/interop/certificate_matrix.py

echo "== terminal ESP test (strongSwan, key agent, ikeproxy terminal)"
python3 tests/interop/terminal_esp.py

echo "== kernel terminal test (the daemon and a terminal whose own kernel does ESP, in a User-Mode Linux guest)"
python3 tests/interop/kernel_terminal.py

echo "== kernel peer test (strongSwan, then libreswan, with kernel ESP and a kernel terminal, all in UML guests: plain ESP, transport mode, throughput)"
python3 tests/interop/kernel_peer.py

echo "== libreswan interop test (ikeproxy endpoint against pluto with kernel XFRM in a UML guest)"
python3 tests/interop/libreswan_interop.py

echo "== plain ESP test (two terminals, ESP as IP protocol 50 without UDP, IPv4 and IPv6)"
python3 tests/interop/plain_esp.py

echo "== daemon end-to-end test (strongSwan, ikeproxy daemon as a two-port bridge, terminals dual-stack and IPv6-only)"
python3 tests/interop/daemon_e2e.py

echo "== daemon ports test (two terminal-side ports, one terminal on each, switched inside the daemon)"
python3 tests/interop/daemon_ports.py

echo "== daemon behind NAT test (a masquerading router between the proxy and strongSwan; its mappings lost and renewed)"
python3 tests/interop/daemon_nat.py

echo "== daemon scale test (32 terminals behind one daemon, half started by strongSwan, half by the terminals, at once)"
python3 tests/interop/daemon_scale.py
echo "== daemon scale test, strongSwan rekeying too (both sides' CHILD SA rekeys due at the same moment)"
SCALE_PEER_REKEY=8 python3 tests/interop/daemon_scale.py

echo "== daemon certificate test (the proxy authenticates with terminals' certificates, keys sealed)"
python3 tests/interop/daemon_certificates.py

echo "== daemon restart test (kill -9, state in SQLite sealed by a SoftHSM2 token, token removal, no key on disk)"
python3 tests/interop/daemon_restart.py

echo "== high availability test (two daemons in parallel on PostgreSQL in its own namespace: kill -9 of the active five times, a switchover, the active cut off from the database; no renegotiation)"
python3 tests/interop/high_availability.py

echo "== lossy link test (20% of packets dropped on strongSwan's link: every exchange of both flows converges)"
python3 tests/interop/lossy_link.py

echo "== reordering test (a user-space bump in the wire drops 20% and holds back 25% for 0.5-2.5 s: every exchange of both sides converges)"
python3 tests/interop/reordering.py

echo "== flood test (spoofed IKE_SA_INIT at the generator's highest rate for 30 s while 50 strongSwan connections negotiate with the endpoint)"
python3 tests/interop/flood.py

echo "== IKE rate benchmark, smoke run (benchmarks/ike_rate with N=20, one round, debug build: every pair of ikeproxy and strongSwan brings all SAs up; the figures come from release runs)"
python3 benchmarks/ike_rate/ike_rate.py --smoke --binary .build/debug/ikeproxy
echo "== IKE rate benchmark, smoke run with the endpoint's engines on 2 worker threads (settings.workers: the same SAs come up with strongSwan on either side)"
python3 benchmarks/ike_rate/ike_rate.py --smoke --binary .build/debug/ikeproxy --workers 2

echo "== daemon burst benchmark, smoke run (benchmarks/daemon_burst with 20 terminals, debug build, one IKE engine and then two: half started by strongSwan, half by ACQUIRE, every terminal keyed; the figures come from release runs)"
python3 benchmarks/daemon_burst/daemon_burst.py --smoke --workers 1 2 --binary .build/debug/ikeproxy

echo "== store latency benchmark, smoke run (benchmarks/store_latency with 20 changes, two rounds, debug build: both stores save; the figures come from release runs)"
python3 benchmarks/store_latency/run.py 20 2 --binary .build/debug/store-latency-benchmark

echo "== management API test (HTTPS, client certificates and bearer tokens, OpenAPI, audit log, the CLI, the web console in headless chromium; screenshots in artifacts/console)"
python3 tests/interop/management_api.py
