/// Which claims to migrate: `--namespace` (any of), `--claim` (any of) and `--selector` on the
/// claim's labels, all of which must match. Empty selects every claim.
public struct ClaimSelector: Sendable, Equatable {
    /// Namespaces to take claims from; empty for all.
    public var namespaces: Set<String> = []
    /// Claims to take; empty for all.
    public var claims: Set<ObjectKey> = []
    /// Labels the claim must have.
    public var labels: LabelSelector?

    /// Selects every claim.
    public init() {}

    /// Whether anything narrows the selection.
    public var isEmpty: Bool { namespaces.isEmpty && claims.isEmpty && labels == nil }

    /// Whether claim `key`, with `labels` (nil when the claim is not in the input), is selected.
    func selects(_ key: ObjectKey, labels claimLabels: [String: String]?) -> Bool {
        if !namespaces.isEmpty && !namespaces.contains(key.namespace) { return false }
        if !claims.isEmpty && !claims.contains(key) { return false }
        if let labels, !labels.matches(claimLabels ?? [:]) { return false }
        return true
    }
}

/// An equality-based label selector, as `kubectl -l` takes it: comma-separated requirements
/// `key=value` (or `==`), `key!=value`, `key` (has the label) and `!key` (lacks it).
/// Set-based requirements (`in`, `notin`) are not supported.
public struct LabelSelector: Sendable, Equatable, CustomStringConvertible {
    enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case differs(String, String)
        case exists(String)
        case absent(String)
    }

    let requirements: [Requirement]
    /// The selector as given.
    public let description: String

    /// Parses `text`; the error says which requirement is not understood.
    public init(parsing text: String) throws(MigrationInputError) {
        var requirements: [Requirement] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = String(raw).trimmingSpaces
            let requirement: Requirement
            if let range = part.firstRange(of: "!=") {
                requirement = .differs(String(part[..<range.lowerBound]), String(part[range.upperBound...]))
            } else if let range = part.firstRange(of: "==") ?? part.firstRange(of: "=") {
                requirement = .equals(String(part[..<range.lowerBound]), String(part[range.upperBound...]))
            } else if part.hasPrefix("!") {
                requirement = .absent(String(part.dropFirst()))
            } else {
                requirement = .exists(part)
            }
            guard Self.isValid(requirement) else {
                throw MigrationInputError(
                    "selector '\(text)': cannot read '\(part)'; use key=value, key!=value, key or !key, "
                        + "separated by commas (set-based requirements such as 'key in (a,b)' are not supported)")
            }
            requirements.append(requirement)
        }
        self.requirements = requirements
        self.description = text
    }

    func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .differs(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .absent(let key): labels[key] == nil
            }
        }
    }

    /// Label keys: an optional DNS-subdomain prefix and `/`, then a name of letters, digits, `-`,
    /// `_` and `.`; values the same characters (or empty). Anything else is a typo or a set-based
    /// requirement.
    private static func isValid(_ requirement: Requirement) -> Bool {
        func isLabelText(_ text: String, allowSlash: Bool) -> Bool {
            text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                    || (allowSlash && byte == UInt8(ascii: "/"))
            }
        }
        func isKey(_ key: String) -> Bool { !key.isEmpty && isLabelText(key, allowSlash: true) }
        switch requirement {
        case .equals(let key, let value), .differs(let key, let value):
            return isKey(key) && isLabelText(value, allowSlash: false)
        case .exists(let key), .absent(let key):
            return isKey(key)
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
