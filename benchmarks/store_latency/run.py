#!/usr/bin/env python3
"""Store write latency, PostgreSQL against SQLite in one run: starts a PostgreSQL server of its own (initdb and
pg_ctl as the postgres user, loopback, a temporary directory, fsync on as in production), builds and runs
store-latency-benchmark against it and a SQLite file, and stops the server.

Usage: python3 benchmarks/store_latency/run.py [CHANGES_PER_ROUND] [ROUNDS] [--binary PATH]"""
import argparse, os, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("changes", nargs="?", default="500")
    parser.add_argument("rounds", nargs="?", default="5")
    parser.add_argument("--binary", default=None)
    parser.add_argument("--port", default="25432")
    args = parser.parse_args()
    versions = sorted(int(v) for v in os.listdir("/usr/lib/postgresql")) if os.path.isdir("/usr/lib/postgresql") else []
    if not versions:
        print("PostgreSQL is not installed (scripts/test.sh installs Debian's postgresql)", file=sys.stderr)
        return 1
    binaries = f"/usr/lib/postgresql/{versions[-1]}/bin"
    binary = args.binary
    if not binary:
        subprocess.run(["swift", "build", "-c", "release", "--product", "store-latency-benchmark"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, ".build", "release", "store-latency-benchmark")
    directory = tempfile.mkdtemp(prefix="ikp-store-latency-pg-")
    shutil.chown(directory, "postgres", "postgres")

    def as_postgres(program, *arguments):
        return subprocess.run(["runuser", "-u", "postgres", "--", f"{binaries}/{program}", *arguments], check=True,
                              capture_output=True, text=True)
    try:
        as_postgres("initdb", "-D", directory + "/data", "-A", "trust", "-U", "postgres")
        as_postgres("pg_ctl", "-D", directory + "/data", "-l", directory + "/server.log", "-w", "-o",
                    f"-p {args.port} -k {directory} -c listen_addresses=127.0.0.1", "start")
        as_postgres("psql", "-h", "127.0.0.1", "-p", args.port, "-U", "postgres", "-q", "-c", "CREATE DATABASE bench")
        print(f"PostgreSQL {versions[-1]} on 127.0.0.1:{args.port} (fsync on, synchronous_commit on), SQLite in WAL mode "
              "(synchronous FULL, as the daemon opens it)", flush=True)
        return subprocess.run([binary, f"postgresql://postgres@127.0.0.1:{args.port}/bench", args.changes, args.rounds]).returncode
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{binaries}/pg_ctl", "-D", directory + "/data", "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
