import Foundation

@testable import Store

/// A PostgreSQL server of the test's own: a cluster made with `initdb` in a temporary directory, started with
/// `pg_ctl` on a loopback port (trust authentication, loopback only), stopped at the end. PostgreSQL refuses to run
/// as root, so under root (CI) it runs as the `postgres` user that Debian's package makes.
final class PostgreSQLServer {
    struct Failure: Error, CustomStringConvertible { var description: String }

    let directory: String
    let port: Int
    private let binaries: String
    private let asRoot = getuid() == 0

    /// With `tls`, the server has a certificate for 127.0.0.1 and `localhost` issued by a CA of the test's own
    /// (`caFile`), and a second CA that issued nothing is at `otherCAFile`.
    init(tls: Bool = false) throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.compactMap(Int.init).max() else {
            throw Failure(description: "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): scripts/test.sh installs Debian's postgresql")
        }
        binaries = "/usr/lib/postgresql/\(version)/bin"
        directory = "/tmp/ikp-postgresql-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = 20_000 + Int(getpid() % 19_000) + (tls ? 1_000 : 0)
        var options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off"
        if tls {
            try makeCertificates()
            options += " -c ssl=on -c ssl_cert_file=\(directory)/server.pem -c ssl_key_file=\(directory)/server.key"
        }
        if asRoot { try run("/bin/chown", ["-R", "postgres:postgres", directory]) }
        try server("initdb", ["-D", directory + "/data", "-A", "trust", "-U", "postgres", "--no-sync"])
        try server("pg_ctl", ["-D", directory + "/data", "-l", directory + "/server.log", "-w", "-o", options, "start"])
    }

    var caFile: String { directory + "/ca.pem" }
    var otherCAFile: String { directory + "/other-ca.pem" }

    /// Two CAs and the server's certificate from the first, with openssl.
    private func makeCertificates() throws {
        let openssl = "/usr/bin/openssl"
        for name in ["ca", "other-ca"] {
            try run(
                openssl,
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=ikeproxy test \(name)", "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem"
                ])
        }
        try run(
            openssl,
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
                "-keyout", "\(directory)/server.key", "-out", "\(directory)/server.csr"
            ])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(directory)/san.ext", atomically: true, encoding: .utf8)
        try run(
            openssl,
            [
                "x509", "-req", "-in", "\(directory)/server.csr", "-CA", "\(directory)/ca.pem", "-CAkey", "\(directory)/ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "\(directory)/san.ext", "-out", "\(directory)/server.pem"
            ])
        chmod("\(directory)/server.key", 0o600)
    }

    /// A new, empty database named after `prefix`, and how a store reaches it.
    func newDatabase(prefix: String) throws -> PostgreSQLStateStore.Settings {
        let name = "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        try createDatabase(name)
        return PostgreSQLStateStore.Settings(host: "127.0.0.1", port: port, username: "postgres", database: name)
    }

    /// A new, empty database.
    func createDatabase(_ name: String) throws {
        try server("psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", "postgres", "-q", "-c", "CREATE DATABASE \(name)"])
    }

    func stop() {
        try? server("pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A PostgreSQL program, as the `postgres` user under root.
    private func server(_ program: String, _ arguments: [String]) throws {
        let path = binaries + "/" + program
        if asRoot { try run("/usr/sbin/runuser", ["-u", "postgres", "--", path] + arguments) } else { try run(path, arguments) }
    }

    /// posix_spawn and waitpid rather than Foundation's Process: the server `pg_ctl` starts would inherit the
    /// descriptor Process watches for the child's end, and `waitUntilExit` would wait as long as the server runs.
    private func run(_ path: String, _ arguments: [String]) throws {
        let outputPath = directory + "/command.out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(description: "\(path) could not start: \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // Exited normally with status 0: WIFEXITED and WEXITSTATUS, which Swift does not import.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw Failure(description: "\(path) \(arguments.joined(separator: " ")) failed (wait status \(status)): \(text)")
        }
    }
}
