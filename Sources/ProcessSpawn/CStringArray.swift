import Glibc

/// A NULL-terminated `char *[]` whose strings live as long as the value.
final class CStringArray {
    /// The array: `count` strings, then NULL. Valid until the value is gone.
    let base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        base = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { base[index] = strdup(string) }
        base[strings.count] = nil
    }

    deinit {
        for index in 0..<count { free(base[index]) }
        base.deallocate()
    }

    /// The array as C's `char *const *` (argv, envp).
    var mutablePointers: UnsafePointer<UnsafeMutablePointer<CChar>?> { UnsafePointer(base) }

    /// The array as C's `const char *const *`.
    var constPointers: UnsafePointer<UnsafePointer<CChar>?> {
        UnsafeRawPointer(base).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
    }
}

/// Keeps the last `limit` bytes appended to it.
struct TailBuffer {
    let limit: Int
    private(set) var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    mutating func append(_ more: ArraySlice<UInt8>) {
        bytes.append(contentsOf: more)
        // Trim in batches so appending stays amortized O(n) for chatty programs.
        if bytes.count > 2 * limit { bytes.removeFirst(bytes.count - limit) }
    }

    var text: String {
        String(decoding: bytes.suffix(limit), as: UTF8.self)
    }
}
