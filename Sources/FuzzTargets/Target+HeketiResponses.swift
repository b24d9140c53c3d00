import CSICore

@testable import Heketi

/// Everything the controller reads from Heketi (`Sources/Heketi/HeketiWire.swift`, `JSONFields.swift`,
/// `HeketiError+HTTP.swift`, `HeketiURL.swift`): each JSON body decoder and its model, the plain-text
/// error bodies, and the queue's `Location` header.
///
/// Input: a response body. The first byte also picks the HTTP status of the error mapping and the
/// base URL the `Location` is resolved against.
enum HeketiResponsesTarget {
    static let target = FuzzTarget(
        name: "heketi-responses",
        summary: "Heketi bodies, error texts and Locations: decoded consistently or refused with a reason",
        run: run)

    static let statuses = [400, 401, 403, 404, 422, 429, 500, 502, 503, 504, 200, 303, 418]
    static let baseURLs = ["http://heketi:8080", "https://heketi.storage.svc:8443/heketi", "http://10.0.0.5:8080/"]
    static let key = "heketi-admin-key-" + FuzzFixture.token

    static func run(_ bytes: [UInt8]) {
        let selector = Int(bytes.first ?? 0)
        checkErrorBody(bytes, status: statuses[selector % statuses.count])
        checkLocation(String(decoding: bytes, as: UTF8.self), base: baseURLs[selector % baseURLs.count])
        checkBaseURL(String(decoding: bytes, as: UTF8.self))
        guard let value = try? JSONValue(parsing: bytes) else { return }
        guard case .object(let fields) = value else {
            expectRefused { () throws(HeketiWireError) in try JSONFields(value) }
            return
        }
        let json: JSONFields
        do {
            json = try JSONFields(value)
        } catch {
            fatalError("property violated: an object is refused as fields: \(error)")
        }
        checkVolume(json, fields: fields)
        checkNode(json)
        checkCluster(json)
        if let list = decoded({ () throws(HeketiWireError) in try VolumeListBody(json: json) }) {
            expect(list.volumes == strings(fields["volumes"]), "volumes \(String(describing: list.volumes))")
        }
        if let list = decoded({ () throws(HeketiWireError) in try ClusterListBody(json: json) }) {
            expect(list.clusters == strings(fields["clusters"]), "clusters \(String(describing: list.clusters))")
        }
        if let operations = decoded({ () throws(HeketiWireError) in try OperationsInfoBody(json: json) }),
            let count = operations.inFlight
        {
            expect(fields["in_flight"] == .number(Double(count)), "in_flight \(count) is not the body's")
        }
        if let durability = decoded({ () throws(HeketiWireError) in try DurabilityBody(json: json) }) {
            checkRoundTrip(durability)
        }
        if let snapshot = decoded({ () throws(HeketiWireError) in try SnapshotBody(json: json) }) {
            let again = try? SnapshotBody(json: JSONFields(snapshot.json))
            expect(again == snapshot, "snapshot \(snapshot) does not survive its JSON")
        }
    }

    // MARK: - JSON bodies

    static func checkVolume(_ json: JSONFields, fields: [String: JSONValue]) {
        guard let body = decoded({ () throws(HeketiWireError) in try VolumeInfoBody(json: json) }) else { return }
        expect(fields["id"] == .string(body.id), "volume id \(body.id) is not the body's")
        expect(fields["name"] == .string(body.name), "volume name \(body.name) is not the body's")
        expect(fields["size"] == .number(Double(body.size)), "volume size \(body.size) is not the body's")
        if let durability = body.durability { checkRoundTrip(durability) }
        let volume: HeketiVolume
        do {
            volume = try body.model()
        } catch {
            expect(!error.reason.isEmpty, "a volume model error without a reason")
            expect(body.durability?.model == nil, "model() refused a known durability")
            return
        }
        expect(volume.id == body.id && volume.name == body.name && volume.sizeGiB == body.size, "model lost fields")
        expect(volume.brickCount == (body.bricks?.count ?? 0), "brick count \(volume.brickCount)")
        expect(volume.hosts == (body.hosts ?? []), "hosts \(volume.hosts)")
        expect(volume.gid == (body.gid ?? 0), "gid \(volume.gid)")
        expect(!volume.glusterVolumeOptions.contains { $0.allSatisfy(\.isWhitespace) }, "blank option kept")
        if volume.snapshotFactor != nil { expect(body.snapshot?.enable == true, "a disabled snapshot has a factor") }
        // What the controller would send for this volume's durability reads back as the same.
        let request = VolumeCreateRequest(sizeGiB: max(volume.sizeGiB, 1), name: "fuzz", durability: volume.durability)
        let sent = HeketiJSON.encode(VolumeCreateBody(request))
        guard case .object(let sentFields)? = try? JSONValue(parsing: sent), let durability = sentFields["durability"],
            let durabilityFields = try? JSONFields(durability)
        else {
            fatalError("property violated: the create body \(String(decoding: sent, as: UTF8.self)) does not read back")
        }
        let echoed = try? DurabilityBody(json: durabilityFields).model
        expect(echoed == volume.durability, "durability \(volume.durability) is sent as \(durability)")
    }

    static func checkNode(_ json: JSONFields) {
        guard let body = decoded({ () throws(HeketiWireError) in try NodeInfoBody(json: json) }) else { return }
        let node = body.model(requestedID: "feed")
        expect(node.id == (body.id ?? "feed"), "node id \(node.id)")
        expect(
            node.online == (body.state == "online"),
            "node online \(node.online) for state \(String(describing: body.state))")
        expect(node.devices.count == (body.devices?.count ?? 0), "device count")
        for (device, raw) in zip(node.devices, body.devices ?? []) {
            expect(device.online == (raw.state == "online"), "device online")
            expect(device.freeKiB == (raw.freeKiB ?? 0) && device.totalKiB == (raw.totalKiB ?? 0), "device sizes")
        }
    }

    static func checkCluster(_ json: JSONFields) {
        guard let body = decoded({ () throws(HeketiWireError) in try ClusterInfoBody(json: json) }) else { return }
        let cluster = body.model(requestedID: "feed")
        expect(cluster.id == (body.id ?? "feed"), "cluster id \(cluster.id)")
        expect(cluster.nodeIDs == (body.nodes ?? []) && cluster.volumeIDs == (body.volumes ?? []), "cluster lists")
    }

    static func checkRoundTrip(_ durability: DurabilityBody) {
        let again = try? DurabilityBody(json: JSONFields(durability.json))
        expect(again == durability, "durability \(durability) does not survive its JSON")
    }

    /// The decoded body, or nil after checking that the refusal gives a reason.
    static func decoded<Body>(_ decode: () throws(HeketiWireError) -> Body) -> Body? {
        do {
            return try decode()
        } catch {
            expect(!error.reason.isEmpty, "a decoder refused without a reason")
            return nil
        }
    }

    static func expectRefused<Body>(_ decode: () throws(HeketiWireError) -> Body) {
        expect(decoded(decode) == nil, "a body that is not an object was decoded")
    }

    static func strings(_ value: JSONValue?) -> [String]? {
        guard case .array(let values)? = value else { return nil }
        return values.map { value in
            guard case .string(let text) = value else { fatalError("property violated: a non-string was decoded") }
            return text
        }
    }

    // MARK: - Error texts, Locations, URLs

    /// Heketi's error text reaches messages only as one short, clean line, never with the key.
    static func checkErrorBody(_ body: [UInt8], status: Int) {
        let reason = HeketiError.shortReason(body)
        expect(reason.unicodeScalars.count <= HeketiError.maxReasonLength + 1, "reason of \(reason.count) characters")
        expect(
            !reason.unicodeScalars.contains {
                $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || ($0 != " " && $0.properties.isWhitespace)
            },
            "reason has control characters or line breaks: \(reason.debugDescription)")
        expect(!reason.hasPrefix(" ") && !reason.hasSuffix(" ") && !reason.contains("  "), "reason spacing: \(reason)")
        let endpoint = HeketiEndpoint(url: "http://heketi:8080", user: "admin", key: key)
        let error = HeketiError.from(status: status, body: body, method: "GET", path: "/volumes", endpoint: endpoint)
        let csi = expectCSIError(error, "HeketiError for HTTP \(status)")
        expect(!csi.message.contains(FuzzFixture.token), "the Heketi key reached an error message")
    }

    static func checkLocation(_ location: String, base: String) {
        guard let url = HeketiURL(base) else { fatalError("property violated: base URL \(base) refused") }
        guard let path = url.apiPath(ofLocation: location) else { return }
        expect(path.hasPrefix("/"), "Location '\(location)' gave the relative path '\(path)'")
        let target = url.target(apiPath: path)
        expect(target.url.hasPrefix(url.origin + "/"), "Location '\(location)' leads to \(target.url)")
        expect(target.path.hasPrefix("/") && !target.path.contains("?"), "token path '\(target.path)'")
    }

    static func checkBaseURL(_ text: String) {
        guard let url = HeketiURL(text) else { return }
        expect(url.origin.hasPrefix("http://") || url.origin.hasPrefix("https://"), "origin '\(url.origin)'")
        let authority = url.origin.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2).first ?? ""
        expect(!authority.isEmpty && !authority.contains("@"), "authority '\(authority)' of '\(text)'")
        expect(!url.basePath.hasSuffix("/"), "base path '\(url.basePath)' ends in '/'")
        expect(url.target(apiPath: "/volumes").url == url.origin + url.basePath + "/volumes", "target of '\(text)'")
    }
}
