import CSICore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// How log lines are written to stderr.
enum LogFormat: String, CaseIterable, Sendable {
    /// `2026-11-25T19:47:24.123Z info rpc started rpc.method=/csi.v1.Identity/Probe`
    case text
    /// One JSON object per line, for log collectors.
    case json
}

/// A swift-log handler writing one line per event to stderr, as text or JSON.
///
/// Each line goes out in a single write(2), so lines from concurrent calls never interleave.
struct DriverLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let format: LogFormat
    let label: String

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        let line = render(level: event.level, message: "\(event.message)", metadata: merged, time: Self.timestamp())
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    func render(level: Logger.Level, message: String, metadata: Logger.Metadata, time: String) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var line = "\(time) \(level) \(message)"
            for key in keys {
                line += " \(key)=\(Self.quotedIfNeeded("\(metadata[key]!)"))"
            }
            return line
        case .json:
            var line = "{\"time\":\(Self.jsonString(time)),\"level\":\(Self.jsonString("\(level)"))"
            line += ",\"logger\":\(Self.jsonString(label)),\"message\":\(Self.jsonString(message))"
            for key in keys {
                line += ",\(Self.jsonString(key)):\(Self.jsonString("\(metadata[key]!)"))"
            }
            return line + "}"
        }
    }

    static func quotedIfNeeded(_ value: String) -> String {
        needsQuotes(value) ? jsonString(value) : value
    }

    /// Whether a text-format value must be quoted: empty, or holding a space, a quote, `=` or a
    /// line break. Checked on the bytes (a log line is written for every RPC), so a space or `=`
    /// followed by a combining mark counts too; the Character check is only for text beyond
    /// ASCII, where Unicode has more line breaks.
    static func needsQuotes(_ value: String) -> Bool {
        var ascii = true
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\""), UInt8(ascii: "="), 0x0A...0x0D: return true
            case 0x80...: ascii = false
            default: continue
            }
        }
        if value.isEmpty { return true }
        return !ascii && value.contains { $0.isNewline }
    }

    /// A JSON string literal (also used to quote text values, so both formats escape alike).
    static func jsonString(_ value: String) -> String { JSONString.quoted(value) }

    /// RFC 3339 UTC with milliseconds, without Foundation (which would cost megabytes of RSS).
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // "YYYY-MM-DDTHH:MM:SS.mmmZ", digits written in place.
        return String(unsafeUninitializedCapacity: 24) { output in
            var index = 0
            func put(_ value: Int, _ width: Int, then separator: UInt8) {
                var remaining = value
                for position in stride(from: index + width - 1, through: index, by: -1) {
                    output[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
                    remaining /= 10
                }
                output[index + width] = separator
                index += width + 1
            }
            put(Int(parts.tm_year) + 1900, 4, then: UInt8(ascii: "-"))
            put(Int(parts.tm_mon) + 1, 2, then: UInt8(ascii: "-"))
            put(Int(parts.tm_mday), 2, then: UInt8(ascii: "T"))
            put(Int(parts.tm_hour), 2, then: UInt8(ascii: ":"))
            put(Int(parts.tm_min), 2, then: UInt8(ascii: ":"))
            put(Int(parts.tm_sec), 2, then: UInt8(ascii: "."))
            put(Int(now.tv_nsec / 1_000_000), 3, then: UInt8(ascii: "Z"))
            return index
        }
    }
}
