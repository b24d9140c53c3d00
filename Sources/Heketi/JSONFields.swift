/// The fields of one JSON object, read the way Go writes them: `null` and a missing field are the
/// same (Go's zero value, here nil), and a wrong type is an error naming the field's path.
public struct JSONFields {
    private let fields: [String: JSONValue]
    /// Where this object sits in the body, e.g. `mount.glusterfs`; empty at the top.
    private let path: String

    /// The fields of `value`, which must be an object; `path` names where it sits, for errors.
    public init(_ value: JSONValue, path: String = "") throws(HeketiWireError) {
        guard case .object(let fields) = value else {
            throw HeketiWireError("unexpected type at \(path.isEmpty ? "the body" : path)")
        }
        self.fields = fields
        self.path = path
    }

    private func fieldPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    private func mismatch(_ key: String) -> HeketiWireError {
        HeketiWireError("unexpected type at \(fieldPath(key))")
    }

    private func present(_ key: String) -> JSONValue? {
        guard let value = fields[key], value != .null else { return nil }
        return value
    }

    /// A field the body must have.
    private func required<T>(_ key: String, _ read: (String) throws(HeketiWireError) -> T?) throws(HeketiWireError) -> T
    {
        guard fields[key] != nil else {
            throw HeketiWireError("missing field '\(key)'" + (path.isEmpty ? "" : " in \(path)"))
        }
        guard let value = try read(key) else { throw HeketiWireError("null at \(fieldPath(key))") }
        return value
    }

    /// A string field; nil when missing or null.
    public func string(_ key: String) throws(HeketiWireError) -> String? {
        guard let value = present(key) else { return nil }
        guard case .string(let text) = value else { throw mismatch(key) }
        return text
    }

    /// A string field the body must have.
    public func requiredString(_ key: String) throws(HeketiWireError) -> String {
        try required(key) { (key) throws(HeketiWireError) in try string(key) }
    }

    /// An integer; a fraction or a number beyond Int is a wrong type, as for Go's int.
    public func int(_ key: String) throws(HeketiWireError) -> Int? {
        guard let value = present(key) else { return nil }
        guard case .number(let number) = value, number == number.rounded(), let integer = Int(exactly: number) else {
            throw mismatch(key)
        }
        return integer
    }

    /// An integer field the body must have.
    public func requiredInt(_ key: String) throws(HeketiWireError) -> Int {
        try required(key) { (key) throws(HeketiWireError) in try int(key) }
    }

    /// A number field; nil when missing or null.
    public func double(_ key: String) throws(HeketiWireError) -> Double? {
        guard let value = present(key) else { return nil }
        guard case .number(let number) = value else { throw mismatch(key) }
        return number
    }

    /// A boolean field; nil when missing or null.
    public func bool(_ key: String) throws(HeketiWireError) -> Bool? {
        guard let value = present(key) else { return nil }
        guard case .bool(let flag) = value else { throw mismatch(key) }
        return flag
    }

    /// An array field, its elements unread; nil when missing or null.
    public func array(_ key: String) throws(HeketiWireError) -> [JSONValue]? {
        guard let value = present(key) else { return nil }
        guard case .array(let values) = value else { throw mismatch(key) }
        return values
    }

    /// An array of strings; any other element is a wrong type.
    public func strings(_ key: String) throws(HeketiWireError) -> [String]? {
        guard let values = try array(key) else { return nil }
        var texts: [String] = []
        texts.reserveCapacity(values.count)
        for (index, value) in values.enumerated() {
            guard case .string(let text) = value else {
                throw HeketiWireError("unexpected type at \(fieldPath(key))[\(index)]")
            }
            texts.append(text)
        }
        return texts
    }

    /// An object field, to read further; nil when missing or null.
    public func object(_ key: String) throws(HeketiWireError) -> JSONFields? {
        guard let value = present(key) else { return nil }
        return try JSONFields(value, path: fieldPath(key))
    }

    /// The objects of an array field, each with its path (`devices[1]`).
    public func objects(_ key: String) throws(HeketiWireError) -> [JSONFields]? {
        guard let values = try array(key) else { return nil }
        var objects: [JSONFields] = []
        for (index, value) in values.enumerated() {
            objects.append(try JSONFields(value, path: "\(fieldPath(key))[\(index)]"))
        }
        return objects
    }

    /// An object of strings, such as Kubernetes labels and annotations; any other value is a wrong
    /// type naming its key.
    public func stringMap(_ key: String) throws(HeketiWireError) -> [String: String]? {
        guard let value = present(key) else { return nil }
        guard case .object(let entries) = value else { throw mismatch(key) }
        var map: [String: String] = [:]
        for (name, entry) in entries {
            guard case .string(let text) = entry else {
                throw HeketiWireError("unexpected type at \(fieldPath(key))[\(name)]")
            }
            map[name] = text
        }
        return map
    }
}
