import FoundationEssentials

// The JSON bodies Heketi sends and accepts, as small Codable structs, and their conversion to the
// model types in HeketiModel.swift.
//
// JSON goes through FoundationEssentials' JSONEncoder/JSONDecoder: it is part of the toolchain on
// Linux and, unlike full Foundation, pulls in no ICU or networking. Heketi is written in Go, so
// every list may arrive as `null` (a nil slice) and every omitempty field may be missing: lists
// and optional fields decode as optionals and default to empty.

/// `POST /volumes`.
struct VolumeCreateBody: Encodable, Equatable {
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
}

/// Heketi's durability object, both in requests and in volume info.
struct DurabilityBody: Codable, Equatable {
    struct Replicate: Codable, Equatable {
        var replica: Int?
    }

    struct Disperse: Codable, Equatable {
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

struct SnapshotBody: Codable, Equatable {
    var enable: Bool?
    var factor: Double?
}

/// `POST /volumes/{id}/expand`.
struct VolumeExpandBody: Encodable, Equatable {
    var expand_size: Int
}

/// `POST /volumes/{id}/clone`.
struct VolumeCloneBody: Encodable, Equatable {
    var name: String
}

/// Skips any JSON value (used to count bricks without modelling them).
struct IgnoredValue: Decodable {
    init(from decoder: any Decoder) throws {}
}

/// `GET /volumes/{id}`.
struct VolumeInfoBody: Decodable {
    struct Mount: Decodable {
        struct GlusterFS: Decodable {
            var hosts: [String]?
        }
        var glusterfs: GlusterFS?
    }

    var id: String
    var name: String
    var size: Int
    var cluster: String?
    var gid: Int?
    var durability: DurabilityBody?
    var glustervolumeoptions: [String]?
    var snapshot: SnapshotBody?
    var mount: Mount?
    var bricks: [IgnoredValue]?

    func model() throws(HeketiWireError) -> HeketiVolume {
        guard let durability = (durability ?? DurabilityBody(.none)).model else {
            throw HeketiWireError("volume \(id) has an unknown durability type '\(self.durability?.type ?? "")'")
        }
        let options = (glustervolumeoptions ?? []).filter { !$0.allSatisfy(\.isWhitespace) }
        let factor = snapshot?.enable == true ? snapshot?.factor : nil
        return HeketiVolume(
            id: id, name: name, sizeGiB: size, clusterID: cluster ?? "", gid: gid ?? 0, durability: durability,
            hosts: mount?.glusterfs?.hosts ?? [], glusterVolumeOptions: options, snapshotFactor: factor,
            brickCount: bricks?.count ?? 0)
    }
}

/// `GET /volumes`.
struct VolumeListBody: Decodable {
    var volumes: [String]?
}

/// `GET /clusters`.
struct ClusterListBody: Decodable {
    var clusters: [String]?
}

/// `GET /clusters/{id}`.
struct ClusterInfoBody: Decodable {
    var id: String?
    var nodes: [String]?
    var volumes: [String]?

    func model(requestedID: String) -> HeketiCluster {
        HeketiCluster(id: id ?? requestedID, nodeIDs: nodes ?? [], volumeIDs: volumes ?? [])
    }
}

/// `GET /nodes/{id}`.
struct NodeInfoBody: Decodable {
    struct Hostnames: Decodable {
        var manage: [String]?
        var storage: [String]?
    }

    struct Device: Decodable {
        struct Storage: Decodable {
            var total: Int?
            var free: Int?
            var used: Int?
        }
        var name: String?
        var storage: Storage?
        var state: String?
    }

    var id: String?
    var cluster: String?
    var hostnames: Hostnames?
    var state: String?
    var devices: [Device]?

    func model(requestedID: String) -> HeketiNode {
        HeketiNode(
            id: id ?? requestedID, clusterID: cluster ?? "", storageHostnames: hostnames?.storage ?? [],
            online: state == "online",
            devices: (devices ?? []).map { device in
                HeketiNode.Device(
                    name: device.name ?? "", totalKiB: device.storage?.total ?? 0, freeKiB: device.storage?.free ?? 0,
                    online: device.state == "online")
            })
    }
}

/// A body Heketi sent that this client could not use.
struct HeketiWireError: Error, Equatable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

enum HeketiJSON {
    static func encode<Body: Encodable>(_ body: Body) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding these plain structs cannot fail (no non-finite floats reach here: the snapshot
        // factor is validated by the caller and Heketi refuses it anyway).
        return (try? Array(encoder.encode(body))) ?? Array("{}".utf8)
    }

    static func decode<Body: Decodable>(_ type: Body.Type, from bytes: [UInt8]) throws(HeketiWireError) -> Body {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw HeketiWireError(describe(error))
        } catch {
            throw HeketiWireError("not JSON")
        }
    }

    /// A short description of a decoding failure: the path of the bad field and what was wrong.
    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "the body" : keys.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(_, let context): return "unexpected type at \(path(context))"
        case .valueNotFound(_, let context): return "null at \(path(context))"
        case .keyNotFound(let key, let context):
            return "missing field '\(key.stringValue)'" + (context.codingPath.isEmpty ? "" : " in \(path(context))")
        case .dataCorrupted(let context): return "malformed JSON at \(path(context))"
        @unknown default: return "unreadable JSON"
        }
    }
}
