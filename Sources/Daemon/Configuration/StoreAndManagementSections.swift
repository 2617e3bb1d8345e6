import ConfigurationFiles
import ESP
import Foundation
import IKEv2
import Management
import Packets
import Proxy
import Store
import X509

extension DaemonConfiguration {
    /// `store`: the SQLite file and what seals its secrets (a PKCS#11 token or a key file).
    static func parseStore(_ file: File) throws -> StoreConfiguration? {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        guard let st = file.store else { return nil }
        let backend: StoreConfiguration.Backend
        switch (st.path, st.postgresql) {
        case (let path?, nil): backend = .sqlite(path: path)
        case (nil, let pg?):
            var password: String?
            if let file = pg.password_file {
                guard let data = FileManager.default.contents(atPath: file) else { throw fail("store.postgresql.password_file: cannot read \(file)") }
                password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if let ca = pg.ca_file, !FileManager.default.isReadableFile(atPath: ca) { throw fail("store.postgresql.ca_file: cannot read \(ca)") }
            do { backend = .postgresql(try PostgreSQLStateStore.Settings(url: pg.url, password: password, caFile: pg.ca_file)) } catch {
                throw fail("store.postgresql.url: \(error)")
            }
        default:
            throw fail("store: give exactly one of path (a SQLite file of this daemon's own) or postgresql (a database a pair of daemons shares)")
        }
        switch (st.pkcs11, st.key_file) {
        case (let p11?, nil):
            let pin: String
            if let text = p11.pin {
                pin = text
            } else if let path = p11.pin_file {
                guard let data = FileManager.default.contents(atPath: path) else { throw fail("store.pkcs11.pin_file: cannot read \(path)") }
                pin = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                throw fail("store.pkcs11: pin or pin_file is required")
            }
            return StoreConfiguration(
                backend: backend,
                sealing: .token(
                    module: p11.module, tokenLabel: p11.token, pin: pin,
                    keyLabel: p11.key_label ?? "ikeproxy-sealing-key"))
        case (nil, let path?):
            return StoreConfiguration(backend: backend, sealing: .keyFile(path: path, create: st.create_key_file ?? false))
        default:
            throw fail("store: give exactly one of pkcs11 (a token) or key_file (a key on removable media) to seal secrets")
        }
    }

    /// `high_availability`: this node's name and the lease's timing; only with a PostgreSQL store, which the pair shares.
    static func parseHighAvailability(_ ha: File.HighAvailability, store: StoreConfiguration?) throws -> HighAvailabilityConfiguration {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        guard case .postgresql? = store?.backend else {
            throw fail("high_availability: the pair shares its state and lease in PostgreSQL: it needs store.postgresql")
        }
        guard !ha.node.isEmpty, ha.node.count <= 64, ha.node.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw fail("high_availability.node: '\(ha.node)' is not a name of 1 to 64 letters, digits, '-', '_' or '.'")
        }
        var timing = Leadership.Timing()
        if let v = ha.lease_duration { timing.leaseDuration = v }
        if let v = ha.claim_interval { timing.claimInterval = v }
        if let v = ha.margin { timing.margin = v }
        guard (0.5...60).contains(timing.leaseDuration) else {
            throw fail("high_availability.lease_duration: \(timing.leaseDuration) is not between 0.5 and 60 seconds")
        }
        guard timing.claimInterval >= 0.05, timing.margin >= 0.05, timing.claimInterval * 2 + timing.margin < timing.leaseDuration else {
            throw fail(
                "high_availability: claim_interval \(timing.claimInterval) s twice and margin \(timing.margin) s (each at least 0.05) "
                    + "must fit in lease_duration \(timing.leaseDuration) s, so that a lost renewal can be made up before the active stops")
        }
        return HighAvailabilityConfiguration(node: ha.node, timing: timing)
    }

    /// `management`: the HTTPS listener, its TLS key (or sealed box) and the administrators.
    static func parseManagement(_ m: File.Management, secrets: inout SecretsFound) throws -> ManagementConfiguration {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        guard IPAddress(m.listen) != nil else { throw fail("management.listen: '\(m.listen)' is not an IP address (the management interface's)") }
        guard !m.administrators.isEmpty else { throw fail("management.administrators: at least one administrator is needed") }
        var administrators: [Administrator] = []
        for (index, a) in m.administrators.enumerated() {
            let at = "management.administrators[\(index)]"
            func digest(_ text: String?, _ key: String, _ how: String) throws -> [UInt8]? {
                guard let text else { return nil }
                guard let bytes = [UInt8](hexString: text.replacingOccurrences(of: ":", with: "")), bytes.count == 32 else {
                    throw fail("\(at).\(key): 64 hexadecimal digits (\(how))")
                }
                return bytes
            }
            let token = try digest(a.token_sha256, "token_sha256", "sha256sum of the token")
            let certificate = try digest(
                a.certificate_sha256, "certificate_sha256",
                "SHA-256 of the client certificate: openssl x509 -in cert.pem -outform DER | sha256sum")
            guard token != nil || certificate != nil else {
                throw fail("\(at): token_sha256 or certificate_sha256 (or both) is needed, or nobody can log in as \(a.name)")
            }
            if certificate != nil && m.client_ca == nil {
                throw fail("\(at).certificate_sha256: management.client_ca must name the CA that issues administrators' certificates")
            }
            guard let role = Administrator.Role(rawValue: a.role ?? "admin") else {
                throw fail("\(at).role: 'admin' or 'reader'")
            }
            administrators.append(Administrator(name: a.name, role: role, tokenSHA256: token, certificateSHA256: certificate))
        }
        if let sealed = m.private_key_sealed {
            secrets.sealed[.managementTLSKey] = try sealedBox(sealed, "management.private_key_sealed")
        } else if m.private_key != nil {
            secrets.clear.append(.managementTLSKey)
        } else {
            throw fail("management: private_key_sealed (from `ikeproxy seal --context management:tls-key`) or private_key (a PEM file) is required")
        }
        return ManagementConfiguration(
            host: m.listen, port: m.port ?? 8443, certificatePath: m.certificate,
            privateKeyPath: m.private_key ?? "", administrators: administrators,
            clientCAPath: m.client_ca)
    }
}
