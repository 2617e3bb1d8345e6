/// A JSON value written straight to text, the subset events and control answers use, with the bytes
/// Foundation's `JSONSerialization` writes for `[.sortedKeys, .withoutEscapingSlashes]`: keys in order, no
/// spaces, `"`, `\` and control characters escaped, everything else (slashes, non-ASCII) as it is. Events are
/// written once per SA change; going through `[String: Any]` and JSONSerialization cost a quarter of the
/// endpoint's CPU in a burst (issue 21).
public indirect enum JSONText: Sendable, Equatable {
    case string(String)
    case bool(Bool)
    case null
    case array([JSONText])
    case object([String: JSONText])

    /// The value as one line of JSON.
    public var rendered: String {
        var text = ""
        text.reserveCapacity(512)
        write(to: &text)
        return text
    }

    func write(to text: inout String) {
        switch self {
        case .string(let value): Self.writeString(value, to: &text)
        case .bool(let value): text += value ? "true" : "false"
        case .null: text += "null"
        case .array(let items):
            text += "["
            for (index, item) in items.enumerated() {
                if index > 0 { text += "," }
                item.write(to: &text)
            }
            text += "]"
        case .object(let members):
            text += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { text += "," }
                Self.writeString(key, to: &text)
                text += ":"
                members[key]!.write(to: &text)
            }
            text += "}"
        }
    }

    /// Whether a string holds a character JSON escapes, read from its UTF-8 storage directly when it has one
    /// (every string an event carries is written through here).
    static func needsEscaping(_ value: String) -> Bool {
        func escaped(_ octet: UInt8) -> Bool { octet < 0x20 || octet == UInt8(ascii: "\"") || octet == UInt8(ascii: "\\") }
        if let found = value.utf8.withContiguousStorageIfAvailable({ octets in
            for octet in octets where escaped(octet) { return true }
            return false
        }) {
            return found
        }
        return value.utf8.contains(where: escaped)
    }

    static func writeString(_ value: String, to text: inout String) {
        text += "\""
        // The common case, nothing to escape, is appended whole.
        if !needsEscaping(value) {
            text += value
            text += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case "\u{08}": text += "\\b"
            case "\u{0C}": text += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}

extension JSONText: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension Optional where Wrapped == String {
    /// The string, or JSON null.
    var json: JSONText { map(JSONText.string) ?? .null }
}

/// One JSON object written member by member into a string, in the order the caller gives the keys: a caller
/// that gives them sorted writes the bytes `JSONText.object` would, with no dictionary built or sorted. The
/// order is checked in debug builds.
struct JSONObjectWriter {
    private var empty = true
    private var lastKey = ""

    init(into text: inout String) { text += "{" }

    func close(into text: inout String) { text += "}" }

    private mutating func key(_ key: String, into text: inout String) {
        assert(empty || key > lastKey, "JSON keys out of order: \(key) after \(lastKey)")
        if !empty { text += "," }
        empty = false
        #if DEBUG
            lastKey = key
        #endif
        JSONText.writeString(key, to: &text)
        text += ":"
    }

    /// A string member; nil is JSON null.
    mutating func string(_ key: String, _ value: String?, into text: inout String) {
        self.key(key, into: &text)
        if let value { JSONText.writeString(value, to: &text) } else { text += "null" }
    }

    mutating func bool(_ key: String, _ value: Bool, into text: inout String) {
        self.key(key, into: &text)
        text += value ? "true" : "false"
    }

    mutating func strings(_ key: String, _ values: [String], into text: inout String) {
        self.key(key, into: &text)
        text += "["
        for (index, value) in values.enumerated() {
            if index > 0 { text += "," }
            JSONText.writeString(value, to: &text)
        }
        text += "]"
    }

    mutating func object(_ key: String, into text: inout String, _ members: (inout JSONObjectWriter, inout String) -> Void) {
        self.key(key, into: &text)
        var inner = JSONObjectWriter(into: &text)
        members(&inner, &text)
        inner.close(into: &text)
    }
}
