import CSICore
import Heketi

/// The StorageClass parameters of a CreateVolume (or GetCapacity) call, validated.
///
/// Every error names the key, the bad value and what is accepted, so an admin can fix the
/// StorageClass from the PVC's events alone.
struct StorageClassParameters: Sendable, Equatable {
    var restURL: String?
    var restUser: String?
    /// Plaintext key from the StorageClass (discouraged: anyone who can read StorageClasses sees it).
    var restUserKey: String?
    /// `restauthenabled: false` (legacy) clears user and key.
    var authEnabled = true
    var clusterIDs: [String] = []
    var gidRange: ClosedRange<Int> = 2000...2_147_483_647
    var durability: Durability = .replicate(3)
    var volumeOptions: [String] = []
    var volumeNamePrefix: String?
    var snapshotFactor: Double?
    var pvcName: String?
    var pvcNamespace: String?

    /// Problems that do not stop provisioning but an admin should hear about once.
    var warnings: [String] = []

    init() {}

    init(_ parameters: [String: String]) throws(CSIError) {
        // Keys are case-insensitive: two spellings of one key would leave the outcome to the order
        // of a dictionary, which differs between processes.
        var spellings: [String: String] = [:]
        for rawKey in parameters.keys.sorted() {
            if let other = spellings.updateValue(rawKey, forKey: rawKey.lowercased()) {
                throw CSIError(
                    .invalidArgument,
                    "parameters '\(other)' and '\(rawKey)' are the same parameter (keys are case-insensitive); "
                        + "keep one of them in the StorageClass")
            }
        }
        var gidMin: Int?
        var gidMax: Int?
        for (rawKey, value) in parameters {
            let key = rawKey.lowercased()
            switch key {
            case ParameterKey.restURL:
                restURL = try Self.url(value)
            case ParameterKey.restUser:
                restUser = value
            case ParameterKey.restUserKey:
                restUserKey = value
                warnings.append(
                    "parameter restuserkey puts the Heketi key in the StorageClass in plain text; "
                        + "use csi.storage.k8s.io/provisioner-secret-name with a Secret holding key 'key'")
            case ParameterKey.restAuthEnabled:
                authEnabled = try Self.bool(rawKey, value)
            case ParameterKey.secretName, ParameterKey.secretNamespace:
                warnings.append(
                    "parameter \(rawKey) is ignored under CSI: name the Secret with "
                        + "csi.storage.k8s.io/provisioner-secret-name/-namespace and "
                        + "csi.storage.k8s.io/controller-expand-secret-name/-namespace (same Secret layout, key 'key')")
            case ParameterKey.clusterID:
                clusterIDs = try Self.clusterIDs(rawKey, value)
            case ParameterKey.gidMin:
                gidMin = try Self.gid(rawKey, value)
            case ParameterKey.gidMax:
                gidMax = try Self.gid(rawKey, value)
            case ParameterKey.volumeType:
                durability = try Self.durability(rawKey, value)
            case ParameterKey.volumeOptions:
                volumeOptions = try Self.volumeOptions(rawKey, value)
            case ParameterKey.volumeNamePrefix:
                volumeNamePrefix = try Self.namePrefix(rawKey, value)
            case ParameterKey.snapFactor:
                snapshotFactor = try Self.snapFactor(rawKey, value)
            case ParameterKey.customEndpointPrefix:
                break  // in-tree Endpoints/Service objects do not exist under CSI; accepted for compatibility
            case ParameterKey.pvcName:
                pvcName = value
            case ParameterKey.pvcNamespace:
                pvcNamespace = value
            case _ where key.hasPrefix(ParameterKey.kubernetesPrefix):
                break
            default:
                throw CSIError(
                    .invalidArgument,
                    "unknown StorageClass parameter '\(rawKey)'; accepted: "
                        + ParameterKey.all.sorted().joined(separator: ", ") + " (case-insensitive)")
            }
        }
        let low = gidMin ?? 2000
        let high = gidMax ?? 2_147_483_647
        guard low <= high else {
            throw CSIError(
                .invalidArgument,
                "parameters gidMin (\(low)) and gidMax (\(high)): gidMin must not be greater than gidMax")
        }
        gidRange = low...high
        if !authEnabled {
            restUser = nil
            restUserKey = nil
        }
    }

    private static func invalid(_ key: String, _ value: String, _ accepted: String) -> CSIError {
        CSIError(.invalidArgument, "parameter \(key): expected \(accepted), got '\(value)'")
    }

    static func url(_ value: String) throws(CSIError) -> String {
        var url = value.trimmingSpaces()
        let scheme = url.hasPrefix("https://") ? "https://" : "http://"
        // A host must follow the scheme: "https:///" would otherwise shrink to "https:".
        let afterScheme = url.dropFirst(scheme.count)
        guard url.hasPrefix(scheme), let first = afterScheme.first, first != "/",
            // Printable ASCII only: the URL goes into every volume ID, which the node accepts only so.
            url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "#") && $0 != UInt8(ascii: "?") })
        else {
            throw invalid(ParameterKey.restURL, value, "an http:// or https:// URL of Heketi, e.g. http://heketi:8080")
        }
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    private static func bool(_ key: String, _ value: String) throws(CSIError) -> Bool {
        switch value.lowercased() {
        case "true": return true
        case "false": return false
        default: throw invalid(key, value, "true or false")
        }
    }

    static func clusterIDs(_ key: String, _ value: String) throws(CSIError) -> [String] {
        let ids = value.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        for id in ids where !id.utf8.allSatisfy(\.isHexDigit) {
            throw invalid(key, value, "a comma-separated list of Heketi cluster IDs (hex)")
        }
        return ids
    }

    private static func gid(_ key: String, _ value: String) throws(CSIError) -> Int {
        guard let gid = Int(value.trimmingSpaces()), gid >= 2000, gid <= 2_147_483_647 else {
            throw invalid(key, value, "an integer from 2000 to 2147483647")
        }
        return gid
    }

    static func durability(_ key: String, _ value: String) throws(CSIError) -> Durability {
        let parts = value.trimmingSpaces().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let accepted = "replicate:N (N = 1 to 3), disperse:D:R (2:1, 4:2, 8:3 or 8:4) or none"
        switch parts.first?.lowercased() {
        case "none" where parts.count == 1:
            return .none
        case "replicate" where parts.count == 2:
            guard let count = Int(parts[1]), (1...3).contains(count) else { throw invalid(key, value, accepted) }
            return .replicate(count)
        case "disperse" where parts.count == 3:
            guard let data = Int(parts[1]), let redundancy = Int(parts[2]),
                [(2, 1), (4, 2), (8, 3), (8, 4)].contains(where: { $0 == (data, redundancy) })
            else { throw invalid(key, value, accepted) }
            return .disperse(data: data, redundancy: redundancy)
        default:
            throw invalid(key, value, accepted)
        }
    }

    private static func volumeOptions(_ key: String, _ value: String) throws(CSIError) -> [String] {
        var options: [String] = []
        for item in value.split(separator: ",") {
            let words = item.split(separator: " ").map(String.init)
            guard words.count == 2, !words[0].isEmpty,
                words.allSatisfy({ $0.allSatisfy { $0.isASCII && !$0.isNewline && $0 != "\"" && $0 != "'" } })
            else {
                throw invalid(
                    key, value, "a comma-separated list of 'option value' pairs, e.g. 'client.ssl on, server.ssl on'")
            }
            options.append(words.joined(separator: " "))
        }
        return options
    }

    private static func namePrefix(_ key: String, _ value: String) throws(CSIError) -> String {
        guard !value.isEmpty, value.utf8.count <= 20,
            value.utf8.allSatisfy({ $0.isAlphanumeric || $0 == UInt8(ascii: "-") })
        else {
            throw invalid(key, value, "1 to 20 letters, digits or '-' (no '_', which separates the name's parts)")
        }
        return value
    }

    private static func snapFactor(_ key: String, _ value: String) throws(CSIError) -> Double {
        guard let factor = Double(value.trimmingSpaces()), factor >= 1, factor <= 100 else {
            throw invalid(key, value, "a number from 1 to 100")
        }
        return factor
    }
}

extension UInt8 {
    var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x61...0x66).contains(self) || (0x41...0x46).contains(self)
    }
    var isAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
