import Foundation
import IKEv2
import X509

/// What the proxy reads from the network when it checks revocation: OCSP answers, CRLs fetched from
/// distribution points, and the extensions of peers' certificates that say where to ask. The first octet
/// picks the parser; the rest is its input. Nothing may trap; no source may be empty, and a chain's
/// sources are its responders, then its distribution points.
public final class RevocationDataFuzzTarget: FuzzTarget {
    public static let name = "revocation-data"
    public init() {}

    public func seeds() -> [[UInt8]] {
        [[0] + Self.ocspGood, [0] + Self.ocspRevoked, [1] + Self.crl, [2] + Self.distributionPoints, [2] + Self.ocspLeaf]
    }

    public func run(_ input: [UInt8]) -> [String] {
        guard let selector = input.first else { return [] }
        let data = Array(input.dropFirst())
        var broken: [String] = []
        switch selector % 3 {
        case 0:
            _ = OCSPResponseValidity.nextUpdate(of: data)
        case 1:
            guard let lists = try? CertificateRevocationList.lists(pemOrDER: data), let ca = Self.authority else { return [] }
            for list in lists {
                _ = list.isSigned(by: ca)
            }
            if let leaf = try? Certificate(derEncoded: Self.crlRevoked) {
                _ = CRLStatusCheck.status(
                    of: leaf, issuer: ca, lists: lists, from: "http://fuzz.test/ca.crl", at: Date(timeIntervalSince1970: 1_800_000_000))
            }
        default:
            guard let certificate = try? Certificate(derEncoded: data) else { return [] }
            let points = CRLDistributionPoints.uris(of: certificate)
            let responders = OCSPStatusCheck.responders(of: certificate)
            if points.contains(where: \.isEmpty) { broken.append("an empty CRL distribution point URI was returned") }
            if responders.contains(where: \.isEmpty) { broken.append("an empty OCSP responder URI was returned") }
            let described = RevocationSources.described(ofChain: [certificate, certificate])
            let expected = responders.map { "OCSP " + $0 } + points.map { "CRL " + $0 }
            if described != expected { broken.append("RevocationSources describes \(described), expected \(expected)") }
        }
        return broken
    }

    static let authority = try? Certificate(derEncoded: ca)

    static func decode(_ text: String) -> [UInt8] { Array(Data(base64Encoded: text.filter { !$0.isWhitespace }) ?? Data()) }

    // Made by openssl: Tests/IKEv2Tests/Fixtures/ocsp and crl (see their README).
    static let ocspGood = decode(
        """
        MIIDEQoBAKCCAwowggMGBgkrBgEFBQcwAQEEggL3MIIC8zCBwaE1MDMxGjAYBgNVBAoMEUlLRVByb3h5IGZpeHR1cmVzMRUwEwYD
        VQQDDAxPQ1NQIHRlc3QgQ0EYDzIwMjYxMTI3MDIwNjEzWjB3MHUwTTAJBgUrDgMCGgUABBRO7I3QmXTa/i+eMFLOCBxCQLrl1QQU
        gcr04mozBDJwYqqAPI7uBxG/h5oCFCQMR9twoBgGw5uxy1gKUZQIC1z4gAAYDzIwMjYxMTI3MDIwNjEzWqARGA8yMTI2MTEwMzAy
        MDYxM1owCgYIKoZIzj0EAwIDSAAwRQIhAMQMm5kuPlfjXyBHwS9MALblrjsjFohOtWD5JEqWWLXvAiAkFSZRAnjOXtrEz/xCZjRj
        bFJRUwfzO+iuAt5Ci1sMk6CCAdUwggHRMIIBzTCCAXOgAwIBAgIUO8HY/yv2kWQJ1I+8259NLjfgHNMwCgYIKoZIzj0EAwIwMzEa
        MBgGA1UECgwRSUtFUHJveHkgZml4dHVyZXMxFTATBgNVBAMMDE9DU1AgdGVzdCBDQTAgFw0yNjExMjcwMjA2MTJaGA8yMTI2MTEw
        MzAyMDYxMlowMzEaMBgGA1UECgwRSUtFUHJveHkgZml4dHVyZXMxFTATBgNVBAMMDE9DU1AgdGVzdCBDQTBZMBMGByqGSM49AgEG
        CCqGSM49AwEHA0IABJ4EhqPNGCi8y/K4sjPDe/XYFsql6lAIHrqJKH4D0IeLvNDgH6eXbTbHmG0ezCRq6YdTclg2JpYLoP4qh3/Z
        6BWjYzBhMB0GA1UdDgQWBBSByvTiajMEMnBiqoA8ju4HEb+HmjAfBgNVHSMEGDAWgBSByvTiajMEMnBiqoA8ju4HEb+HmjAPBgNV
        HRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNIADBFAiEA9C/yO4k23vvaXQkjzsTao5YnSCyznV7dvp+N
        8CGG4i4CIHzHgEYUNCqIA1KzKAyIwQRbMAPOFy+4mnt/vHaAvj48
        """)
    static let ocspRevoked = decode(
        """
        MIIDKQoBAKCCAyIwggMeBgkrBgEFBQcwAQEEggMPMIIDCzCB2aE1MDMxGjAYBgNVBAoMEUlLRVByb3h5IGZpeHR1cmVzMRUwEwYD
        VQQDDAxPQ1NQIHRlc3QgQ0EYDzIwMjYxMTI3MDIwNjEzWjCBjjCBizBNMAkGBSsOAwIaBQAEFE7sjdCZdNr+L54wUs4IHEJAuuXV
        BBSByvTiajMEMnBiqoA8ju4HEb+HmgIUJAxH23CgGAbDm7HLWApRlAgLXPmhFhgPMjAyNjExMjcwMjA2MTJaoAMKAQEYDzIwMjYx
        MTI3MDIwNjEzWqARGA8yMTI2MTEwMzAyMDYxM1owCgYIKoZIzj0EAwIDSAAwRQIgbUXnHq06MQ3G5JeU3uAMVXEAETvAFQqMjbYo
        uh4wn3ICIQDoX1py2Bu/7taGf0mveZ6KjnJE6Y66r29Y+FjFF1ZauqCCAdUwggHRMIIBzTCCAXOgAwIBAgIUO8HY/yv2kWQJ1I+8
        259NLjfgHNMwCgYIKoZIzj0EAwIwMzEaMBgGA1UECgwRSUtFUHJveHkgZml4dHVyZXMxFTATBgNVBAMMDE9DU1AgdGVzdCBDQTAg
        Fw0yNjExMjcwMjA2MTJaGA8yMTI2MTEwMzAyMDYxMlowMzEaMBgGA1UECgwRSUtFUHJveHkgZml4dHVyZXMxFTATBgNVBAMMDE9D
        U1AgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJ4EhqPNGCi8y/K4sjPDe/XYFsql6lAIHrqJKH4D0IeLvNDgH6eX
        bTbHmG0ezCRq6YdTclg2JpYLoP4qh3/Z6BWjYzBhMB0GA1UdDgQWBBSByvTiajMEMnBiqoA8ju4HEb+HmjAfBgNVHSMEGDAWgBSB
        yvTiajMEMnBiqoA8ju4HEb+HmjAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNIADBFAiEA9C/y
        O4k23vvaXQkjzsTao5YnSCyznV7dvp+N8CGG4i4CIHzHgEYUNCqIA1KzKAyIwQRbMAPOFy+4mnt/vHaAvj48
        """)
    static let crl = decode(
        """
        MIHzMIGaAgEBMAoGCCqGSM49BAMCMDAxGTAXBgNVBAoMEElLRVByb3h5IGZpeHR1cmUxEzARBgNVBAMMCmZpeHR1cmUgQ0EXDTI2
        MTEyNjIxMjE1MloYDzIxMjYxMTAyMjEyMTUyWjAnMCUCFEtYNJl4NhKd248towT6+7c14Sn1Fw0yNjExMjYyMTIxNTJaoA4wDDAK
        BgNVHRQEAwIBATAKBggqhkjOPQQDAgNIADBFAiAxjThsa8G74qYCMcq3vG+GGKAUAe6DOuhTHzqXLFhtlwIhANGFhVTcAQt72WpO
        5rAJuQHnQmRIuzpUcS8lSx3EFnwx
        """)
    static let distributionPoints = decode(
        """
        MIICJjCCAc2gAwIBAgIUBINL6EAT4mkF1DTWoe0s/Ya+UeMwCgYIKoZIzj0EAwIwOjEaMBgGA1UECgwRSUtFUHJveHkgZml4dHVy
        ZXMxHDAaBgNVBAMME2Rpc3RyaWJ1dGlvbiBwb2ludHMwIBcNMjYxMTI3MDIxMTIwWhgPMjEyNjExMDMwMjExMjBaMDoxGjAYBgNV
        BAoMEUlLRVByb3h5IGZpeHR1cmVzMRwwGgYDVQQDDBNkaXN0cmlidXRpb24gcG9pbnRzMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
        QgAEWwgB9tudpRWtRzK4phjldKeuLwbnz8bd9et64pb90zWrCV9GekIol2/PIE9OynmtfKOcDI/isbya8uionfod86OBrjCBqzAd
        BgNVHQ4EFgQUlT6Jc0PnJpYmT/2vTdVxpmoNF9gwHwYDVR0jBBgwFoAUlT6Jc0PnJpYmT/2vTdVxpmoNF9gwDwYDVR0TAQH/BAUw
        AwEB/zBYBgNVHR8EUTBPMBygGqAYhhZodHRwOi8vY3JsLnRlc3QvY2EuY3JsMBygGqAYhhZsZGFwOi8vbGRhcC50ZXN0L2NuPWNh
        MBGgD6ANgQtjYUBjcmwudGVzdDAKBggqhkjOPQQDAgNHADBEAiB+rInXXn14PziDJ0GiYvqCy8EEUOnSRYjeWqA+NYMZ2QIgap7r
        w7Yf/Uig8NFmEx+3j0T9R6Rk2oQ39EjRUFR9zNE=
        """)
    static let ocspLeaf = decode(
        """
        MIIB9jCCAZygAwIBAgIUJAxH23CgGAbDm7HLWApRlAgLXPgwCgYIKoZIzj0EAwIwMzEaMBgGA1UECgwRSUtFUHJveHkgZml4dHVy
        ZXMxFTATBgNVBAMMDE9DU1AgdGVzdCBDQTAgFw0yNjExMjcwMjA2MTJaGA8yMTI2MTEwMzAyMDYxMlowKzEaMBgGA1UECgwRSUtF
        UHJveHkgZml4dHVyZXMxDTALBgNVBAMMBGdvb2QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQSBUVycDQiJw4VZEF9Wir0XDV1
        nPMGuzYcGJIFH/HoliWb1JnuCUhq4Q4Q5Wj70sHX5MV52zNWDGZQl4c9AYv2o4GTMIGQMA8GA1UdEQQIMAaHBMAAAgEwDgYDVR0P
        AQH/BAQDAgeAMC0GCCsGAQUFBwEBBCEwHzAdBggrBgEFBQcwAYYRaHR0cDovL29jc3AudGVzdC8wHQYDVR0OBBYEFH3XpkPGaI5a
        O/Jp2J+VGPySXyJCMB8GA1UdIwQYMBaAFIHK9OJqMwQycGKqgDyO7gcRv4eaMAoGCCqGSM49BAMCA0gAMEUCIHxTXwaOIqL52KUe
        8jIoJBNwUaApY9+Gb3o3tSLresgEAiEAqT5Fmzgu2FY1Z9kasQFN/k7GOkOmhFPKgmwVnwuL4Uc=
        """)
    static let ca = decode(
        """
        MIIBxzCCAW2gAwIBAgIUQQk5OJBuaynXgniZ0xA9jGUcwvQwCgYIKoZIzj0EAwIwMDEZMBcGA1UECgwQSUtFUHJveHkgZml4dHVy
        ZTETMBEGA1UEAwwKZml4dHVyZSBDQTAgFw0yNjExMjYyMTIxNTJaGA8yMTI2MTEwMjIxMjE1MlowMDEZMBcGA1UECgwQSUtFUHJv
        eHkgZml4dHVyZTETMBEGA1UEAwwKZml4dHVyZSBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABA+b9I48lLL5+eT4RWt55H53
        84lHj9n3sYs0jJRQPib10tNsknw+z6Mrpz5m5SeHI3DP65tz2Fe/irTgyIIYeSGjYzBhMB0GA1UdDgQWBBQ7ssAsEwxPiAG/dWbl
        /mmVIjpo1zAfBgNVHSMEGDAWgBQ7ssAsEwxPiAG/dWbl/mmVIjpo1zAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAK
        BggqhkjOPQQDAgNIADBFAiEAsce2H36WHGheOYItoi3/gD+clRcm1sbxqIih85tq7fcCIFAW1izGf3hbQDfHhxEVmE8W4WUoY1iv
        ViPECuPX44T0
        """)
    static let crlRevoked = decode(
        """
        MIIBtDCCAVqgAwIBAgIUS1g0mXg2Ep3bjy2jBPr7tzXhKfUwCgYIKoZIzj0EAwIwMDEZMBcGA1UECgwQSUtFUHJveHkgZml4dHVy
        ZTETMBEGA1UEAwwKZml4dHVyZSBDQTAgFw0yNjExMjYyMTIxNTJaGA8yMTI2MTEwMjIxMjE1MlowLTEZMBcGA1UECgwQSUtFUHJv
        eHkgZml4dHVyZTEQMA4GA1UEAwwHcmV2b2tlZDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGYxcMgA7anh108Acyl396ktd+M7
        egLGd78sa8RVWzjXp78nW7xZqivCL2Y4WYtt2iMQsK6mSESCYodaZo0z/NejUzBRMA8GA1UdEQQIMAaHBMAAAgEwHQYDVR0OBBYE
        FCRUAjUriSPx9gSehsPvzVxJa/6ZMB8GA1UdIwQYMBaAFDuywCwTDE+IAb91ZuX+aZUiOmjXMAoGCCqGSM49BAMCA0gAMEUCIQDo
        YaYPqAlA+4xVYv2xqVLsJsMU5UOVtoNNeHPXQrKdQQIgZ7KTkzUCULDHPtAAZuVE55WZYSHr+MqWTUVo4jEsw58=
        """)
}
