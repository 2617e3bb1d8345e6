import Foundation

/// Finds the keys of a JSON configuration file that no part of the program reads: a misspelt option, or one
/// this version does not have. JSONDecoder passes over such keys in silence, so the file would run without
/// what its author meant (an operator's `cookie_threshold` in a daemon file that has no such option); strongSwan
/// and libreswan name an unknown option, and so do we.
///
/// Each Decodable view of the file (several types read parts of one file) is decoded through a decoder that
/// wraps JSONDecoder's own, so values, types and errors are exactly JSONDecoder's, and records, for every
/// object a view opened, which keys were present and which the view asked for. A key of an object that some
/// view opened and no view asked for is unknown; objects read whole (`[String: T]`) ask for every key.
public final class UnknownKeyCheck: @unchecked Sendable {
    private var present: [String: Set<String>] = [:]
    private var asked: [String: Set<String>] = [:]
    private let data: Data
    fileprivate static let userInfoKey = CodingUserInfoKey(rawValue: "ikeproxy.unknown-key-check")!

    public init(data: Data) { self.data = data }

    /// Decodes `type` from the file, as `JSONDecoder` would, recording what it reads.
    @discardableResult
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.userInfo[Self.userInfoKey] = self
        return try decoder.decode(Recorded<T>.self, from: data).value
    }

    /// Every key no view read, as a path ("settings.cookie_threshold", "connections[2].childs"), sorted.
    public var unknownKeys: [String] {
        present.flatMap { path, keys in keys.subtracting(asked[path] ?? []).map { path.isEmpty ? $0 : "\(path).\($0)" } }.sorted()
    }

    /// Throws a ConfigurationError naming every unknown key and, for the first, the keys its object may have.
    public func refuseUnknownKeys(in what: String) throws {
        let unknown = unknownKeys
        guard let first = unknown.first else { return }
        let object = first.split(separator: ".").dropLast().joined(separator: ".")
        let known = (asked[object] ?? []).sorted().joined(separator: ", ")
        throw ConfigurationError(
            "\(what): unknown key\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")) (a misspelling, or an option this version "
                + "does not have; \(object.isEmpty ? "the top level" : object) may have: \(known))")
    }

    fileprivate func opened(_ path: String, keys: [String]) { present[path, default: []].formUnion(keys) }
    fileprivate func asked(_ path: String, _ key: String) { asked[path, default: []].insert(key) }

    static func path(_ codingPath: [CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue, key.stringValue == "Index \(index)" || key.stringValue == "\(index)" {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }
}

/// The entry point JSONDecoder calls: hands its decoder, wrapped, to `T`.
private struct Recorded<T: Decodable>: Decodable {
    let value: T
    init(from decoder: Decoder) throws {
        guard let check = decoder.userInfo[UnknownKeyCheck.userInfoKey] as? UnknownKeyCheck else { preconditionFailure("decoded without its check") }
        value = try T(from: RecordingDecoder(inner: decoder, check: check))
    }
}

/// Decodes `T` from a wrapped decoder, except the types JSONDecoder decodes in its own way (dates, data,
/// URLs, decimals), which are left to it: they are leaves, with no keys to record.
private func decodeRecorded<T: Decodable>(_ type: T.Type, from decoder: Decoder, check: UnknownKeyCheck) throws -> T {
    if T.self == Date.self || T.self == Data.self || T.self == URL.self || T.self == Decimal.self {
        return try decoder.singleValueContainer().decode(T.self)
    }
    return try T(from: RecordingDecoder(inner: decoder, check: check))
}

private struct RecordingDecoder: Decoder {
    let inner: Decoder
    let check: UnknownKeyCheck
    var codingPath: [CodingKey] { inner.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { inner.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let container = try inner.container(keyedBy: type)
        let path = UnknownKeyCheck.path(container.codingPath)
        // Every key present: AnyKey accepts them all, whatever `Key` knows.
        let all = try inner.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
        check.opened(path, keys: all)
        return KeyedDecodingContainer(RecordingKeyedContainer(inner: container, check: check, path: path))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        RecordingUnkeyedContainer(inner: try inner.unkeyedContainer(), check: check)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer {
        RecordingSingleValueContainer(inner: try inner.singleValueContainer(), decoder: self)
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

private struct RecordingKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let inner: KeyedDecodingContainer<Key>
    let check: UnknownKeyCheck
    let path: String
    var codingPath: [CodingKey] { inner.codingPath }

    var allKeys: [Key] {
        let keys = inner.allKeys
        for key in keys { check.asked(path, key.stringValue) }
        return keys
    }

    private func ask(_ key: Key) { check.asked(path, key.stringValue) }

    func contains(_ key: Key) -> Bool {
        ask(key)
        return inner.contains(key)
    }
    func decodeNil(forKey key: Key) throws -> Bool {
        ask(key)
        return try inner.decodeNil(forKey: key)
    }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try leaf(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try leaf(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try leaf(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try leaf(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try leaf(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try leaf(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try leaf(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try leaf(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try leaf(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try leaf(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try leaf(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try leaf(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try leaf(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try leaf(type, key) }

    private func leaf<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        ask(key)
        return try inner.decode(type, forKey: key)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        ask(key)
        // JSONDecoder's own error for a missing key, which superDecoder would turn into a type mismatch.
        guard inner.contains(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key.stringValue)."))
        }
        return try decodeRecorded(type, from: try inner.superDecoder(forKey: key), check: check)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        ask(key)
        return try RecordingDecoder(inner: try inner.superDecoder(forKey: key), check: check).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        ask(key)
        return RecordingUnkeyedContainer(inner: try inner.nestedUnkeyedContainer(forKey: key), check: check)
    }
    func superDecoder() throws -> Decoder { RecordingDecoder(inner: try inner.superDecoder(), check: check) }
    func superDecoder(forKey key: Key) throws -> Decoder {
        ask(key)
        return RecordingDecoder(inner: try inner.superDecoder(forKey: key), check: check)
    }
}

private struct RecordingUnkeyedContainer: UnkeyedDecodingContainer {
    var inner: UnkeyedDecodingContainer
    let check: UnknownKeyCheck
    var codingPath: [CodingKey] { inner.codingPath }
    var count: Int? { inner.count }
    var isAtEnd: Bool { inner.isAtEnd }
    var currentIndex: Int { inner.currentIndex }

    mutating func decodeNil() throws -> Bool { try inner.decodeNil() }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try inner.decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try inner.decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try inner.decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try inner.decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try inner.decode(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try inner.decode(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try inner.decode(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try inner.decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try inner.decode(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try inner.decode(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try inner.decode(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try inner.decode(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try inner.decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try inner.decode(type) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // An element's own decoder (it moves past the element), wrapped to record the keys inside it.
        try decodeRecorded(type, from: try inner.superDecoder(), check: check)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try RecordingDecoder(inner: try inner.superDecoder(), check: check).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        RecordingUnkeyedContainer(inner: try inner.nestedUnkeyedContainer(), check: check)
    }
    mutating func superDecoder() throws -> Decoder { RecordingDecoder(inner: try inner.superDecoder(), check: check) }
}

private struct RecordingSingleValueContainer: SingleValueDecodingContainer {
    let inner: SingleValueDecodingContainer
    let decoder: RecordingDecoder
    var codingPath: [CodingKey] { inner.codingPath }

    func decodeNil() -> Bool { inner.decodeNil() }
    func decode(_ type: Bool.Type) throws -> Bool { try inner.decode(type) }
    func decode(_ type: String.Type) throws -> String { try inner.decode(type) }
    func decode(_ type: Double.Type) throws -> Double { try inner.decode(type) }
    func decode(_ type: Float.Type) throws -> Float { try inner.decode(type) }
    func decode(_ type: Int.Type) throws -> Int { try inner.decode(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try inner.decode(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try inner.decode(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try inner.decode(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try inner.decode(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try inner.decode(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try inner.decode(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try inner.decode(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try inner.decode(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try inner.decode(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // A value that is itself a whole type (a wrapper decoding its content): the same decoder, still recording.
        try decodeRecorded(type, from: decoder.inner, check: decoder.check)
    }
}
