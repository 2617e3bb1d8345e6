import ConfigurationFiles
import IKEv2
import Proxy

/// What a reload (SIGHUP, or the API's reload) of the daemon takes from its configuration file for the
/// protection profiles: every profile as the file now has it (proposals, pre-shared key, identities,
/// lifetimes, CAs, CRLs, revocation policy), used from the next negotiation; SAs already made keep what
/// they agreed. A profile new in the file can be named by the policy at once; one gone from the file is
/// removed once the policy in force no longer names it (terminals' certificates: TerminalCredentialReload).
public enum ProfileReload {
    /// Step one, before the policy is read again: the file's profiles replace or join the running ones; those
    /// gone from the file stay for now (the policy may still name them).
    public static func apply(fresh: [ProtectionProfile], to current: [String: ProtectionProfile])
        -> (updated: [String: ProtectionProfile], lines: [String])
    {
        var updated = current
        var lines: [String] = []
        for new in fresh.sorted(by: { $0.name < $1.name }) {
            let remote: RemoteAuthentication =
                new.peerTrustAnchors.map {
                    .certificate(trustAnchors: $0, revocationLists: new.peerRevocationLists, revocation: new.peerRevocationPolicy)
                } ?? .preSharedKey
            updated[new.name] = new
            guard let old = current[new.name] else {
                lines.append("reload: profile '\(new.name)' is new: \(CredentialReload.describe(remote)); the policy may name it")
                continue
            }
            lines.append("reload: profile '\(new.name)': \(CredentialReload.describe(remote))")
            let changed = changes(from: old, to: new)
            if !changed.isEmpty {
                lines.append(
                    "reload: profile '\(new.name)': \(changed.joined(separator: ", ")) changed; used from the next negotiation "
                        + "(SAs already made keep what they agreed)")
            }
        }
        return (updated, lines)
    }

    /// Step two, once the policy in force is known: profiles gone from the file that it no longer names are removed.
    public static func removeUnused(_ profiles: [String: ProtectionProfile], inFile: Set<String>, namedByPolicy: Set<String>)
        -> (updated: [String: ProtectionProfile], lines: [String])
    {
        var updated = profiles
        var lines: [String] = []
        for name in profiles.keys.sorted() where !inFile.contains(name) {
            if namedByPolicy.contains(name) {
                lines.append("reload: profile '\(name)' is gone from the file, but the policy in force names it: kept")
            } else {
                updated[name] = nil
                lines.append("reload: profile '\(name)' is gone from the file and no rule names it: removed")
            }
        }
        return (updated, lines)
    }

    /// What differs between two readings of a profile, by name (never the values of secrets).
    static func changes(from old: ProtectionProfile, to new: ProtectionProfile) -> [String] {
        var changed: [String] = []
        if old.ikeProposals != new.ikeProposals { changed.append("IKE proposals") }
        if old.espProposals != new.espProposals { changed.append("ESP proposals") }
        if old.preSharedKey != new.preSharedKey { changed.append("pre-shared key") }
        if old.peerIdentity != new.peerIdentity { changed.append("peer identity") }
        if old.mode != new.mode { changed.append("mode") }
        if old.forceEncapsulation != new.forceEncapsulation { changed.append("UDP encapsulation") }
        if old.hardLifetime != new.hardLifetime || old.volumeLifetime != new.volumeLifetime { changed.append("lifetimes") }
        if old.childRekeyTime != new.childRekeyTime || old.ikeRekeyTime != new.ikeRekeyTime
            || old.childRekeyJitter != new.childRekeyJitter || old.ikeRekeyJitter != new.ikeRekeyJitter
        {
            changed.append("rekey times")
        }
        if old.livenessInterval != new.livenessInterval { changed.append("liveness interval") }
        if old.authenticatesWithTerminalCertificate != new.authenticatesWithTerminalCertificate || old.signsWithRSAPSS != new.signsWithRSAPSS {
            changed.append("local authentication")
        }
        if old.childless != new.childless { changed.append("childless") }
        return changed
    }
}
