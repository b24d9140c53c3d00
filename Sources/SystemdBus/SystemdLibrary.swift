import CSystemdShim

/// libsystemd itself, which the shim loads with `dlopen` the first time a connection is opened rather than
/// linking it: a node without libsystemd still starts and places its mounts another way, and a node plugin that
/// never asks systemd anything never maps it.
public enum SystemdLibrary {
    /// The soname loaded (Debian package libsystemd0).
    public static let name = CSD_LIBRARY_NAME

    /// Loads libsystemd once per process; later calls return the first outcome. nil when connections can be
    /// made; otherwise why not, saying what is missing and what to install (every `SystemdConnection` then fails
    /// with this text).
    public static func loadFailure() -> String? {
        var message: UnsafePointer<CChar>?
        guard csd_library_init(&message) != 0 else { return nil }
        return message.map { String(cString: $0) } ?? "libsystemd could not be loaded"
    }

    /// What `loadFailure()` would answer if libsystemd were the library `name`, or nil when `name` loads and has
    /// every function the shim calls. Loads it into a table of its own (the process's libsystemd is not
    /// touched), so tests can try a library that does not exist.
    public static func loadFailure(of name: String) -> String? {
        var message = [CChar](repeating: 0, count: 512)
        let result = message.withUnsafeMutableBufferPointer { csd_library_probe(name, $0.baseAddress, $0.count) }
        guard result != 0 else { return nil }
        return String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
