/// A namespaced Kubernetes object's name: `namespace/name`.
public struct ObjectKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The object's namespace.
    public var namespace: String
    /// The object's name.
    public var name: String

    /// The key of `name` in `namespace`.
    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// Parses `namespace/name`, as `--claim` takes it. Nil unless both parts are non-empty and
    /// there is exactly one `/`.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(namespace: String(parts[0]), name: String(parts[1]))
    }

    /// `namespace/name`.
    public var description: String { namespace + "/" + name }

    /// By namespace, then name: the order claims are written and planned in.
    public static func < (left: ObjectKey, right: ObjectKey) -> Bool {
        (left.namespace, left.name) < (right.namespace, right.name)
    }
}

/// Why `glusterfs-csi migrate` could not read its input at all (exit status 2); problems with
/// one PV are refusals instead, and the others are still migrated.
public struct MigrationInputError: Error, Equatable, CustomStringConvertible {
    /// What is wrong and where, for the user.
    public var message: String

    /// An error saying `message`.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
