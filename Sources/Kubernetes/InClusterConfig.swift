import CSICore
import Glibc

/// How a pod reaches the Kubernetes API with its service account: the API server from the
/// environment kubelet injects (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`), the token
/// and CA bundle from the mounted service-account directory.
public struct InClusterConfig: Sendable, Equatable {
    public static let defaultServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// `https://host:port`, an IPv6 host in brackets.
    public let apiURL: String
    public let tokenPath: String
    public let caBundlePath: String

    /// The configuration, or why there is none (the process does not run in a cluster).
    public static func load(
        serviceAccountDirectory: String, environment: [String: String]
    ) -> Result<InClusterConfig, NotInCluster> {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            return .failure(NotInCluster(reason: "KUBERNETES_SERVICE_HOST is not set"))
        }
        let port = environment["KUBERNETES_SERVICE_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        guard host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") }), UInt16(port) != nil else {
            return .failure(
                NotInCluster(
                    reason:
                        "KUBERNETES_SERVICE_HOST/PORT '\(printable(host)):\(printable(port))' is not a host and port"))
        }
        let tokenPath = serviceAccountDirectory + "/token"
        guard access(tokenPath, R_OK) == 0 else {
            return .failure(NotInCluster(reason: "no service account token at \(tokenPath)"))
        }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return .success(
            InClusterConfig(
                apiURL: "https://\(bracketed):\(port)", tokenPath: tokenPath,
                caBundlePath: serviceAccountDirectory + "/ca.crt"))
    }

    public init(apiURL: String, tokenPath: String, caBundlePath: String) {
        self.apiURL = apiURL
        self.tokenPath = tokenPath
        self.caBundlePath = caBundlePath
    }

    /// The token as it is now: read for every request, because kubelet rotates bound tokens.
    public func token() throws(KubernetesError) -> String {
        guard let file = fopen(tokenPath, "r") else {
            throw .transport("cannot read the service account token \(tokenPath): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 64 * 1024 {
            let count = fread(&buffer, 1, buffer.count, file)
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        let token = String(decoding: bytes.trimmingWhitespace(), as: UTF8.self)
        guard !token.isEmpty, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .transport("the service account token \(tokenPath) is empty or not printable ASCII")
        }
        return token
    }
}

/// Why the process does not talk to a Kubernetes API.
public struct NotInCluster: Error, Sendable, Equatable {
    public let reason: String
}

extension [UInt8] {
    /// Without leading and trailing spaces, tabs and line ends (a token file ends in a newline).
    func trimmingWhitespace() -> ArraySlice<UInt8> {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return []
        }
        return self[first...last]
    }
}
