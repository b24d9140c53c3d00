import Heketi

/// One JSON text given to `glusterfs-csi migrate`, with the name its errors use.
public struct MigrationInput: Sendable {
    /// A file name, or `standard input`.
    public var name: String
    /// The JSON text.
    public var bytes: [UInt8]

    /// The JSON text `bytes`, read from `name`.
    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// The objects migration reads from `kubectl get pv,pvc,endpoints,storageclass -A -o json`,
/// indexed by name. Other kinds are skipped; the same object twice is an input error, since which
/// one counted would depend on their order.
struct KubernetesObjects {
    var volumes: [String: JSONFields] = [:]
    var claims: [ObjectKey: JSONFields] = [:]
    var endpoints: [ObjectKey: JSONFields] = [:]
    var classes: [String: JSONFields] = [:]

    init(inputs: [MigrationInput]) throws(MigrationInputError) {
        for input in inputs {
            try read(input)
        }
    }

    /// A Kubernetes List (`items`, as `kubectl get -o json` writes for any number of objects) or
    /// a single object.
    private mutating func read(_ input: MigrationInput) throws(MigrationInputError) {
        func problem(_ error: HeketiWireError) -> MigrationInputError {
            MigrationInputError("\(input.name): \(error.reason)")
        }
        let top: JSONFields
        let items: [JSONValue]?
        do {
            top = try JSONFields(try JSONValue(parsing: input.bytes))
            items = try top.array("items")
        } catch {
            throw problem(error)
        }
        guard let items else {
            try add(top, at: "the object", from: input.name)
            return
        }
        for (index, item) in items.enumerated() {
            let path = "items[\(index)]"
            do {
                try add(try JSONFields(item, path: path), at: path, from: input.name)
            } catch let error as HeketiWireError {
                throw problem(error)
            } catch let error as MigrationInputError {
                throw error
            } catch {
                throw MigrationInputError("\(input.name): \(error)")
            }
        }
    }

    private mutating func add(_ object: JSONFields, at path: String, from source: String) throws(MigrationInputError) {
        let kind: String
        let name: String
        let namespace: String
        do {
            guard let objectKind = try object.string("kind") else {
                throw MigrationInputError(
                    "\(source): \(path) has no kind; expected a List from "
                        + "`kubectl get pv,pvc,endpoints,storageclass -A -o json`")
            }
            let metadata = try object.object("metadata")
            guard let objectName = try metadata?.string("name"), !objectName.isEmpty else {
                throw MigrationInputError("\(source): \(path) (\(objectKind)) has no metadata.name")
            }
            kind = objectKind
            name = objectName
            // kubectl always writes the namespace of namespaced objects; without one, it is the
            // namespace kubectl would have used.
            namespace = try metadata?.string("namespace") ?? "default"
        } catch let error as HeketiWireError {
            throw MigrationInputError("\(source): \(error.reason)")
        } catch let error as MigrationInputError {
            throw error
        } catch {
            throw MigrationInputError("\(source): \(error)")
        }
        let key = ObjectKey(namespace: namespace, name: name)
        func twice(_ what: String) -> MigrationInputError {
            MigrationInputError(
                "\(source): \(path): \(kind) \(what) appears twice in the input; give each object once")
        }
        switch kind {
        case "PersistentVolume":
            guard volumes.updateValue(object, forKey: name) == nil else { throw twice(name) }
        case "PersistentVolumeClaim":
            guard claims.updateValue(object, forKey: key) == nil else { throw twice(key.description) }
        case "Endpoints":
            guard endpoints.updateValue(object, forKey: key) == nil else { throw twice(key.description) }
        case "StorageClass":
            guard classes.updateValue(object, forKey: name) == nil else { throw twice(name) }
        default:
            break
        }
    }
}
