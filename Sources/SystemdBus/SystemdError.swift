import CSystemdShim

/// Why a request to systemd failed: a sentence saying what was asked, why it failed and what to do, plus the
/// D-Bus error name and errno for callers that branch on them.
public struct SystemdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was asked, why it failed (with systemd's own message and D-Bus error name when it answered with an
    /// error) and, where there is something to do, what.
    public let message: String
    /// The D-Bus error name of the failure, e.g. `org.freedesktop.systemd1.UnitExists`; nil when there was none (a
    /// socket that does not exist, a timeout, a job that ended badly, libsystemd missing).
    public let dbusName: String?
    /// The errno that classifies the failure (`ENOENT`: nothing listens at the path; `ETIMEDOUT`: no answer in
    /// time; `ELIBACC`: libsystemd could not be loaded; `EIO`: a job ended otherwise than "done"), 0 when none.
    public let errno: Int32

    /// The D-Bus error systemd answers when a unit of the name to create is already loaded.
    public static let unitExists = "org.freedesktop.systemd1.UnitExists"

    /// A failure described by `message`, optionally with a D-Bus error name and an errno.
    public init(_ message: String, dbusName: String? = nil, errno: Int32 = 0) {
        self.message = message
        self.dbusName = dbusName
        self.errno = errno
    }

    /// The message.
    public var description: String { message }

    /// Whether systemd refused to create a unit because one of that name is loaded.
    public var isUnitExists: Bool { dbusName == Self.unitExists }

    /// The error the shim reported in `error`, with `hint` (what to do) appended when there is one.
    init(_ error: csd_error, hint: String? = nil) {
        let text = Self.string(fromCString: error.message)
        let name = Self.string(fromCString: error.name)
        var message = text.isEmpty ? "a request to systemd failed" : text
        if let hint { message += "; " + hint }
        self.init(message, dbusName: name.isEmpty ? nil : name, errno: -error.code)
    }

    /// The NUL-terminated text in a C `char[N]` (imported as a tuple).
    static func string<Tuple>(fromCString tuple: Tuple) -> String {
        withUnsafeBytes(of: tuple) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
