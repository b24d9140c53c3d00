import CSICore

@testable import Controller
@testable import Node

/// StorageClass parameters (`Sources/Controller/StorageClassParameters.swift`) and the Heketi volume
/// name derived from them.
///
/// Input: one parameter per line, `key=value` (split at the first `=`; a line without one is a key
/// with an empty value); a line `#name=NAME` sets the CSI volume name instead.
enum StorageClassTarget {
    static let target = FuzzTarget(
        name: "storageclass-parameters",
        summary: "StorageClass parameters and the Heketi volume name: valid values or INVALID_ARGUMENT",
        run: run)

    static func run(_ bytes: [UInt8]) {
        var parameters: [String: String] = [:]
        var csiName = "pvc-8b2c5a1e-3d4f-4e6a-9b7c-0d1e2f3a4b5c"
        for line in lines(bytes) where !line.isEmpty {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count == 2 ? String(parts[1]) : ""
            if key == "#name" { csiName = value } else { parameters[key] = value }
        }

        let parsed: StorageClassParameters
        do {
            parsed = try StorageClassParameters(parameters)
        } catch {
            let csi = expectCSIError(error, "StorageClassParameters")
            expect(csi.code == .invalidArgument, "a bad parameter is \(csi.code), not INVALID_ARGUMENT")
            return
        }
        check(parsed, parameters: parameters)
        checkName(csiName: csiName, parameters: parsed)
    }

    static func check(_ parsed: StorageClassParameters, parameters: [String: String]) {
        // Keys are case-insensitive, so two spellings of one key would make the outcome depend on
        // the order of a dictionary: the parser must refuse them.
        let lowered = parameters.keys.map { $0.lowercased() }
        expect(Set(lowered).count == lowered.count, "accepted two spellings of one key: \(parameters.keys.sorted())")
        // Parsing again gives the same: nothing depends on iteration order or state.
        expect((try? StorageClassParameters(parameters)) == parsed, "parsing the same parameters twice differed")

        expect(parsed.gidRange.lowerBound >= 2000, "gidMin below 2000: \(parsed.gidRange)")
        expect(parsed.gidRange.upperBound <= 2_147_483_647, "gidMax above 2147483647: \(parsed.gidRange)")
        switch parsed.durability {
        case .replicate(let count): expect((1...3).contains(count), "replicate:\(count) accepted")
        case .disperse(let data, let redundancy):
            expect(
                [(2, 1), (4, 2), (8, 3), (8, 4)].contains { $0 == (data, redundancy) },
                "disperse:\(data):\(redundancy) accepted")
        case .none: break
        }
        for option in parsed.volumeOptions {
            let words = option.split(separator: " ", omittingEmptySubsequences: false)
            expect(words.count == 2 && !words[0].isEmpty && !words[1].isEmpty, "volume option '\(option)' not 'a b'")
            expect(
                option.unicodeScalars.allSatisfy { $0.isASCII && $0 != "\"" && $0 != "'" && $0 != "\n" && $0 != "\r" },
                "volume option '\(option)' has quotes, line breaks or non-ASCII")
        }
        for id in parsed.clusterIDs {
            expect(!id.isEmpty && id.utf8.allSatisfy(\.isHexDigit), "cluster ID '\(id)' is not hex")
        }
        if let factor = parsed.snapshotFactor { expect(factor >= 1 && factor <= 100, "snapfactor \(factor) accepted") }
        if !parsed.authEnabled {
            expect(parsed.restUser == nil && parsed.restUserKey == nil, "restauthenabled=false kept a user or key")
        }
        if let url = parsed.restURL { checkURL(url) }
    }

    /// A resturl the controller accepts ends up in every volume ID it creates, which the node
    /// must accept too, and which must parse back to the same URL.
    static func checkURL(_ url: String) {
        expect(url.hasPrefix("http://") || url.hasPrefix("https://"), "resturl '\(url)' is not http(s)")
        expect(!url.hasSuffix("/"), "resturl '\(url)' kept a trailing slash")
        expect(
            (try? ControllerConfiguration.validatedHeketiURL(url, source: "resturl")) == url,
            "resturl '\(url)' does not validate again to itself")
        let heketiID = "0123456789abcdef0123456789abcdef"
        guard let id = try? VolumeID(heketiID: heketiID, heketiURL: url) else {
            expect(url.utf8.count > VolumeID.maximumLength - 36, "VolumeID refused the short resturl '\(url)'")
            return
        }
        expect(VolumeID(parsing: id.description) == id, "volume ID '\(id)' does not parse back")
        expect(
            (try? NodeRequestValidation.volumeID(id.description)) != nil,
            "the node refuses volume ID '\(printable(id.description))' that the controller would record")
    }

    static func checkName(csiName: String, parameters: StorageClassParameters) {
        let name = HeketiVolumeName(
            csiName: csiName, prefix: parameters.volumeNamePrefix, pvcNamespace: parameters.pvcNamespace,
            pvcName: parameters.pvcName)
        expect(
            !name.value.isEmpty && name.value.utf8.count <= HeketiVolumeName.maximumLength,
            "Heketi name '\(name)' is empty or longer than \(HeketiVolumeName.maximumLength) bytes")
        expect(
            name.value.utf8.allSatisfy { $0.isAlphanumeric || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") },
            "Heketi name '\(name)' has characters outside [A-Za-z0-9_-]")
        if let prefix = parameters.volumeNamePrefix {
            expect(name.value.hasPrefix(prefix + "_"), "Heketi name '\(name)' lost its prefix '\(prefix)'")
        }
        let again = HeketiVolumeName(
            csiName: csiName, prefix: parameters.volumeNamePrefix, pvcNamespace: parameters.pvcNamespace,
            pvcName: parameters.pvcName)
        expect(again == name, "Heketi name of '\(csiName)' is not deterministic")
    }
}
