// The JSON bodies Heketi sends and accepts, and their conversion to the model types in
// HeketiModel.swift. They are read and written with JSONValue/JSONFields (no Codable: see
// JSONValue). Heketi is written in Go, so every list may arrive as `null` (a nil slice) and every
// omitempty field may be missing: lists and optional fields read as optionals and default to
// empty.

/// A body Heketi sends.
protocol HeketiResponseBody {
    init(json: JSONFields) throws(HeketiWireError)
}

/// A body sent to Heketi.
protocol HeketiRequestBody {
    var json: JSONValue { get }
}

/// `.object` of the fields that are present: nil (Go's omitempty) leaves a field out.
private func object(_ fields: [String: JSONValue?]) -> JSONValue {
    .object(fields.compactMapValues { $0 })
}

private func strings(_ values: [String]) -> JSONValue { .array(values.map(JSONValue.string)) }

/// `POST /volumes`.
struct VolumeCreateBody: HeketiRequestBody, Equatable {
    var size: Int
    var name: String
    var durability: DurabilityBody
    var gid: Int?
    var clusters: [String]?
    var glustervolumeoptions: [String]?
    var snapshot: SnapshotBody?

    init(_ request: VolumeCreateRequest) {
        size = request.sizeGiB
        name = request.name
        durability = DurabilityBody(request.durability)
        gid = request.gid == 0 ? nil : request.gid
        clusters = request.clusters.isEmpty ? nil : request.clusters
        glustervolumeoptions = request.glusterVolumeOptions.isEmpty ? nil : request.glusterVolumeOptions
        snapshot = request.snapshotFactor.map { SnapshotBody(enable: true, factor: $0) }
    }

    var json: JSONValue {
        object([
            "size": .number(Double(size)), "name": .string(name), "durability": durability.json,
            "gid": gid.map { .number(Double($0)) }, "clusters": clusters.map(strings),
            "glustervolumeoptions": glustervolumeoptions.map(strings), "snapshot": snapshot?.json,
        ])
    }
}

/// Heketi's durability object, both in requests and in volume info.
struct DurabilityBody: Equatable {
    struct Replicate: Equatable {
        var replica: Int?
    }

    struct Disperse: Equatable {
        var data: Int?
        var redundancy: Int?
    }

    var type: String?
    var replicate: Replicate?
    var disperse: Disperse?

    init(_ durability: Durability) {
        switch durability {
        case .replicate(let replica):
            type = "replicate"
            replicate = Replicate(replica: replica)
        case .disperse(let data, let redundancy):
            type = "disperse"
            disperse = Disperse(data: data, redundancy: redundancy)
        case .none:
            type = "none"
        }
    }

    init(json: JSONFields) throws(HeketiWireError) {
        type = try json.string("type")
        replicate = try json.object("replicate").map { (fields) throws(HeketiWireError) in
            Replicate(replica: try fields.int("replica"))
        }
        disperse = try json.object("disperse").map { (fields) throws(HeketiWireError) in
            Disperse(data: try fields.int("data"), redundancy: try fields.int("redundancy"))
        }
    }

    var json: JSONValue {
        object([
            "type": type.map(JSONValue.string),
            "replicate": replicate.map { object(["replica": $0.replica.map { .number(Double($0)) }]) },
            "disperse": disperse.map {
                object([
                    "data": $0.data.map { .number(Double($0)) },
                    "redundancy": $0.redundancy.map { .number(Double($0)) },
                ])
            },
        ])
    }

    /// The model value; nil for a type this client does not know.
    var model: Durability? {
        switch type ?? "" {
        // Heketi's own default replica count is 3.
        case "replicate": return .replicate(replicate?.replica ?? 3)
        case "disperse":
            guard let data = disperse?.data, let redundancy = disperse?.redundancy else { return nil }
            return .disperse(data: data, redundancy: redundancy)
        // Heketi reports a volume created without durability with an empty type.
        case "none", "": return Durability.none
        default: return nil
        }
    }
}

struct SnapshotBody: Equatable {
    var enable: Bool?
    var factor: Double?

    init(enable: Bool?, factor: Double?) {
        self.enable = enable
        self.factor = factor
    }

    init(json: JSONFields) throws(HeketiWireError) {
        enable = try json.bool("enable")
        factor = try json.double("factor")
    }

    var json: JSONValue {
        object(["enable": enable.map(JSONValue.bool), "factor": factor.map(JSONValue.number)])
    }
}

/// `POST /volumes/{id}/expand`.
struct VolumeExpandBody: HeketiRequestBody, Equatable {
    var expand_size: Int

    var json: JSONValue { .object(["expand_size": .number(Double(expand_size))]) }
}

/// `POST /volumes/{id}/clone`.
struct VolumeCloneBody: HeketiRequestBody, Equatable {
    var name: String

    var json: JSONValue { .object(["name": .string(name)]) }
}

/// `GET /volumes/{id}`.
struct VolumeInfoBody: HeketiResponseBody {
    var id: String
    var name: String
    var size: Int
    var cluster: String?
    var gid: Int?
    var durability: DurabilityBody?
    var glustervolumeoptions: [String]?
    var snapshot: SnapshotBody?
    /// `mount.glusterfs.hosts`.
    var hosts: [String]?
    /// Only counted.
    var bricks: [JSONValue]?

    init(json: JSONFields) throws(HeketiWireError) {
        id = try json.requiredString("id")
        name = try json.requiredString("name")
        size = try json.requiredInt("size")
        cluster = try json.string("cluster")
        gid = try json.int("gid")
        durability = try json.object("durability").map { (fields) throws(HeketiWireError) in
            try DurabilityBody(json: fields)
        }
        glustervolumeoptions = try json.strings("glustervolumeoptions")
        snapshot = try json.object("snapshot").map { (fields) throws(HeketiWireError) in
            try SnapshotBody(json: fields)
        }
        hosts = try json.object("mount")?.object("glusterfs")?.strings("hosts")
        bricks = try json.array("bricks")
    }

    func model() throws(HeketiWireError) -> HeketiVolume {
        guard let durability = (durability ?? DurabilityBody(.none)).model else {
            throw HeketiWireError("volume \(id) has an unknown durability type '\(self.durability?.type ?? "")'")
        }
        let options = (glustervolumeoptions ?? []).filter { !$0.allSatisfy(\.isWhitespace) }
        let factor = snapshot?.enable == true ? snapshot?.factor : nil
        return HeketiVolume(
            id: id, name: name, sizeGiB: size, clusterID: cluster ?? "", gid: gid ?? 0, durability: durability,
            hosts: hosts ?? [], glusterVolumeOptions: options, snapshotFactor: factor,
            brickCount: bricks?.count ?? 0)
    }
}

/// `GET /volumes`.
struct VolumeListBody: HeketiResponseBody {
    var volumes: [String]?

    init(json: JSONFields) throws(HeketiWireError) {
        volumes = try json.strings("volumes")
    }
}

/// `GET /operations` (only the count the controller uses).
struct OperationsInfoBody: HeketiResponseBody {
    var inFlight: Int?

    init(json: JSONFields) throws(HeketiWireError) {
        inFlight = try json.int("in_flight")
    }
}

/// `GET /clusters`.
struct ClusterListBody: HeketiResponseBody {
    var clusters: [String]?

    init(json: JSONFields) throws(HeketiWireError) {
        clusters = try json.strings("clusters")
    }
}

/// `GET /clusters/{id}`.
struct ClusterInfoBody: HeketiResponseBody {
    var id: String?
    var nodes: [String]?
    var volumes: [String]?

    init(json: JSONFields) throws(HeketiWireError) {
        id = try json.string("id")
        nodes = try json.strings("nodes")
        volumes = try json.strings("volumes")
    }

    func model(requestedID: String) -> HeketiCluster {
        HeketiCluster(id: id ?? requestedID, nodeIDs: nodes ?? [], volumeIDs: volumes ?? [])
    }
}

/// `GET /nodes/{id}`.
struct NodeInfoBody: HeketiResponseBody {
    struct Device {
        var name: String?
        var totalKiB: Int?
        var freeKiB: Int?
        var state: String?
    }

    var id: String?
    var cluster: String?
    /// `hostnames.storage`.
    var storageHostnames: [String]?
    var state: String?
    var devices: [Device]?

    init(json: JSONFields) throws(HeketiWireError) {
        id = try json.string("id")
        cluster = try json.string("cluster")
        storageHostnames = try json.object("hostnames")?.strings("storage")
        state = try json.string("state")
        var devices: [Device]?
        if let objects = try json.objects("devices") {
            devices = []
            for device in objects {
                let storage = try device.object("storage")
                devices?.append(
                    Device(
                        name: try device.string("name"), totalKiB: try storage?.int("total"),
                        freeKiB: try storage?.int("free"), state: try device.string("state")))
            }
        }
        self.devices = devices
    }

    func model(requestedID: String) -> HeketiNode {
        HeketiNode(
            id: id ?? requestedID, clusterID: cluster ?? "", storageHostnames: storageHostnames ?? [],
            online: state == "online",
            devices: (devices ?? []).map { device in
                HeketiNode.Device(
                    name: device.name ?? "", totalKiB: device.totalKiB ?? 0, freeKiB: device.freeKiB ?? 0,
                    online: device.state == "online")
            })
    }
}

/// A body Heketi sent that this client could not use (or any JSON text `JSONValue` and
/// `JSONFields` cannot read).
public struct HeketiWireError: Error, Equatable {
    /// What is wrong and where: "not JSON: unexpected end at byte 12", "unexpected type at spec.path".
    public var reason: String
    init(_ reason: String) { self.reason = reason }
}

enum HeketiJSON {
    static func encode(_ body: some HeketiRequestBody) -> [UInt8] {
        body.json.text
    }

    static func decode<Body: HeketiResponseBody>(
        _ type: Body.Type, from bytes: [UInt8]
    ) throws(HeketiWireError) -> Body {
        try Body(json: JSONFields(JSONValue(parsing: bytes)))
    }
}
